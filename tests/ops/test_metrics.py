"""The metric catalogue, the bounded label helpers and the two exposition paths."""

from __future__ import annotations

import urllib.request

import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from chainworker.ops import metrics

# The metrics issue 6 names, with their label sets.
REQUIRED: dict[str, tuple[str, tuple[str, ...]]] = {
    "chainworker_tx_submitted": ("counter", ("op",)),
    "chainworker_tx_confirmed": ("counter", ("op",)),
    "chainworker_tx_failed": ("counter", ("op", "reason")),
    "chainworker_tx_expired": ("counter", ("op",)),
    "chainworker_tx_retries": ("counter", ("op",)),
    "chainworker_tx_rebroadcasts": ("counter", ()),
    "chainworker_tx_confirmation_seconds": ("histogram", ("op",)),
    "chainworker_tx_landing_slots": ("histogram", ()),
    "chainworker_tx_live": ("gauge", ("status",)),
    "chainworker_tx_oldest_live_seconds": ("gauge", ()),
    "chainworker_requests_pending": ("gauge", ()),
    "chainworker_rpc_request_seconds": ("histogram", ("endpoint", "method")),
    "chainworker_rpc_errors": ("counter", ("endpoint", "kind")),
    "chainworker_rpc_endpoint_up": ("gauge", ("endpoint",)),
    "chainworker_block_height": ("gauge", ()),
    "chainworker_queue_depth": ("gauge", ("queue",)),
    "chainworker_job_seconds": ("histogram", ("job",)),
    "chainworker_outbox_unprocessed": ("gauge", ()),
    "chainworker_fees_lamports": ("counter", ("op",)),
    "chainworker_spend_limit_refusals": ("counter", ()),
    "chainworker_spend_limit_utilization_ratio": ("gauge", ("period",)),
}


def test_every_required_metric_is_defined_with_its_labels() -> None:
    specs = metrics.metric_specs()
    for name, (kind, labels) in REQUIRED.items():
        assert name in specs, name
        assert specs[name].kind == kind, name
        assert specs[name].labels == labels, name


def test_every_defined_metric_is_in_the_registry() -> None:
    described = {family.name for family in metrics.REGISTRY.collect()}
    described |= {family.name for family in metrics.DATABASE_GAUGES.describe()}
    assert set(metrics.metric_specs()) <= described


def test_confirmation_buckets_cover_a_tenth_of_a_second_to_five_minutes() -> None:
    assert metrics.CONFIRMATION_BUCKETS[0] <= 0.1
    assert metrics.CONFIRMATION_BUCKETS[-1] >= 300


def test_op_series_exist_before_the_first_event() -> None:
    body, _ = metrics.render_latest()
    text = body.decode()
    for op in metrics.OPS:
        assert f'chainworker_tx_submitted_total{{op="{op}"}}' in text
        assert f'chainworker_tx_failed_total{{op="{op}",reason="other"}}' in text


def test_rpc_observer_records_latency_and_bounded_errors_without_url_secrets() -> None:
    url = "https://rpc.example.com/v1/?api-key=s3cr3t-api-key"
    metrics.rpc_observer(url, "getSignatureStatuses", 0.042, None)
    metrics.rpc_observer(url, "getSignatureStatuses", 1.5, "ReadTimeout")
    metrics.rpc_observer(url, "not a method!", 0.1, "something new")
    text = metrics.render_latest()[0].decode()
    assert "s3cr3t-api-key" not in text
    endpoint = 'endpoint="https://rpc.example.com"'
    count = f'chainworker_rpc_request_seconds_count{{{endpoint},method="getSignatureStatuses"}} 2.0'
    assert count in text
    assert f'chainworker_rpc_errors_total{{{endpoint},kind="timeout"}} 1.0' in text
    assert f'chainworker_rpc_errors_total{{{endpoint},kind="other"}} 1.0' in text
    assert f'chainworker_rpc_request_seconds_count{{{endpoint},method="other"}} 1.0' in text


def _endpoint_up(label: str) -> float:
    value = metrics.REGISTRY.get_sample_value("chainworker_rpc_endpoint_up", {"endpoint": label})
    assert value is not None
    return value


def test_rpc_observer_keeps_endpoint_up_from_what_it_sees() -> None:
    label = "0:rpc-up.example.com:443"  # the chain layer's own label passes through
    metrics.rpc_observer(label, "getSlot", 0.01, None)
    assert _endpoint_up(label) == 1
    metrics.rpc_observer(label, "getSlot", 0.01, "rpc")  # the node answered: still up
    metrics.rpc_observer(label, "getSlot", 0.01, "rate_limited")
    assert _endpoint_up(label) == 1
    metrics.rpc_observer(label, "getSlot", 5.0, "transport")
    assert _endpoint_up(label) == 0
    metrics.rpc_observer(label, "getSlot", 0.01, None)
    assert _endpoint_up(label) == 1
    errors = {
        kind: metrics.REGISTRY.get_sample_value(
            "chainworker_rpc_errors_total", {"endpoint": label, "kind": kind}
        )
        for kind in ("rpc", "rate_limited", "transport")
    }
    assert errors == {"rpc": 1.0, "rate_limited": 1.0, "transport": 1.0}


@pytest.mark.parametrize(
    ("url", "label"),
    [
        ("http://127.0.0.1:8899", "http://127.0.0.1:8899"),
        ("https://user:pw@host.example:443/path?k=v", "https://host.example:443"),
        ("1:api.mainnet-beta.solana.com:443", "1:api.mainnet-beta.solana.com:443"),
        ("not a url", "invalid"),
        ("host/path?api-key=x", "invalid"),
    ],
)
def test_endpoint_label_keeps_only_scheme_host_and_port(url: str, label: str) -> None:
    assert metrics.endpoint_label(url) == label


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        ({"InstructionError": [0, {"Custom": 0}]}, "already_in_use"),
        ("InstructionError:0:Custom:0", "already_in_use"),
        ("InstructionError:2:Custom:1", "insufficient_funds"),
        ("InstructionError:1:Custom:17", "program_error"),
        ("InstructionError:0:InvalidAccountData", "invalid_account"),
        ('{"InstructionError": [2, {"Custom": 1}]}', "insufficient_funds"),
        ("Allocate: account Address { address: X } already in use", "already_in_use"),
        ("Transaction simulation failed: Blockhash not found", "blockhash_not_found"),
        ("InsufficientFundsForRent { account_index: 1 }", "insufficient_lamports"),
        ("Attempt to debit an account but found no record of a prior credit", "account_not_found"),
        ("something nobody has seen before", "other"),
        ("Transaction signature verification failure", "signature_invalid"),
        ({"InstructionError": [3, "InvalidAccountData"]}, "invalid_account"),
        ({"InstructionError": [1, {"Custom": 17}]}, "program_error"),
        ("httpx.ReadTimeout: timed out", "rpc_error"),
        ("refused: daily spending limit reached", "spend_limit"),
        ("insufficient_lamports", "insufficient_lamports"),
        ("", "other"),
        (None, "other"),
    ],
)
def test_failure_reason_maps_error_text_to_a_bounded_code(error: object, reason: str) -> None:
    assert metrics.failure_reason(error) == reason


@given(st.one_of(st.text(), st.dictionaries(st.text(), st.integers()), st.none()))
def test_failure_reason_is_always_a_known_code(error: object) -> None:
    assert metrics.failure_reason(error) in metrics.FAILURE_REASONS


def test_record_helpers_reject_unknown_ops_and_count_known_ones() -> None:
    with pytest.raises(ValueError, match="unknown op"):
        metrics.record_failed("mint_everything", "boom")
    before = metrics.TX_FAILED.labels(op="burn", reason="insufficient_funds")._value.get()
    assert metrics.record_failed("burn", {"InstructionError": [0, {"Custom": 1}]}) == (
        "insufficient_funds"
    )
    after = metrics.TX_FAILED.labels(op="burn", reason="insufficient_funds")._value.get()
    assert after == before + 1


def _families(registry: CollectorRegistry) -> dict[str, list[tuple[dict[str, str], float]]]:
    from prometheus_client import generate_latest

    return {
        family.name: [(sample.labels, sample.value) for sample in family.samples]
        for family in text_string_to_metric_families(generate_latest(registry).decode())
    }


def test_database_gauges_are_exported_only_between_refresh_and_release() -> None:
    registry = CollectorRegistry()
    gauges = metrics.DatabaseGauges()
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


def test_render_latest_is_parseable_prometheus_text() -> None:
    body, content_type = metrics.render_latest()
    assert content_type.startswith("text/plain")
    names = {family.name for family in text_string_to_metric_families(body.decode())}
    assert "chainworker_tx_submitted" in names
    assert "process_cpu_seconds" in names


def test_metrics_server_serves_the_registry_over_http() -> None:
    server = metrics.start_metrics_server(0, addr="127.0.0.1")
    try:
        assert server.port > 0
        url = f"http://127.0.0.1:{server.port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:
            body = response.read().decode()
        assert "chainworker_tx_confirmed_total" in body
    finally:
        server.close()


def test_the_metrics_server_listens_on_loopback_unless_told() -> None:
    server = metrics.start_metrics_server(0)
    try:
        assert server._server.server_address[0] == "127.0.0.1"
    finally:
        server.close()
