"""The worker's exporter: database gauges only between refresh and release, /metrics over HTTP."""

from __future__ import annotations

import urllib.request

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from chainworker.jobs import exporter
from chainworker.lifecycle.model import FailureReason, TxOp


def _families(registry: CollectorRegistry) -> dict[str, list[tuple[dict[str, str], float]]]:
    return {
        family.name: [(sample.labels, sample.value) for sample in family.samples]
        for family in text_string_to_metric_families(generate_latest(registry).decode())
    }


def test_database_gauges_are_exported_only_between_refresh_and_release() -> None:
    registry = CollectorRegistry()
    gauges = exporter.DatabaseGauges()
    registry.register(gauges)
    assert _families(registry) == {}

    gauges.refresh(
        live_by_status={"confirming": 4},
        oldest_live_seconds=93.5,
        requests_pending=7,
        outbox_unprocessed=2,
        queue_depth={"chainworker:queue": 11},
        spend_utilization={"daily": 0.25},
    )
    exported = _families(registry)
    live = {labels["status"]: value for labels, value in exported["chainworker_tx_live"]}
    assert live == {"confirming": 4.0, "pending": 0.0}
    assert exported["chainworker_tx_oldest_live_seconds"] == [({}, 93.5)]
    assert exported["chainworker_requests_pending"] == [({}, 7.0)]
    assert exported["chainworker_outbox_unprocessed"] == [({}, 2.0)]
    assert exported["chainworker_queue_depth"] == [({"queue": "chainworker:queue"}, 11.0)]
    assert ({"period": "daily"}, 0.25) in exported["chainworker_spend_limit_utilization_ratio"]
    assert ({"period": "monthly"}, 0.0) in exported["chainworker_spend_limit_utilization_ratio"]
    assert gauges.active

    gauges.release()
    assert _families(registry) == {}
    assert not gauges.active


def test_metrics_server_serves_the_registry_over_http() -> None:
    server = exporter.start_metrics_server(0, addr="127.0.0.1")
    try:
        assert server.port > 0
        url = f"http://127.0.0.1:{server.port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:
            body = response.read().decode()
        assert "chainworker_tx_confirmed_total" in body
    finally:
        server.close()


def test_the_metrics_server_listens_on_loopback_unless_told() -> None:
    server = exporter.start_metrics_server(0)
    try:
        assert server._server.server_address[0] == "127.0.0.1"
    finally:
        server.close()


def test_every_operation_and_reason_has_its_series_from_the_start() -> None:
    exporter.initialize_series()
    body = generate_latest(exporter.metrics.REGISTRY).decode()
    for op in TxOp:
        assert f'chainworker_tx_submitted_total{{op="{op}"}}' in body
        for reason in FailureReason:
            assert f'chainworker_tx_failed_total{{op="{op}",reason="{reason}"}}' in body
