"""The metric catalogue and the RPC observer."""

from __future__ import annotations

from chainworker.obs import metrics

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
    described |= set(metrics.DB_GAUGES)  # described by the worker's collector, when it runs
    assert set(metrics.metric_specs()) <= described


def test_confirmation_buckets_cover_a_tenth_of_a_second_to_five_minutes() -> None:
    assert metrics.CONFIRMATION_BUCKETS[0] <= 0.1
    assert metrics.CONFIRMATION_BUCKETS[-1] >= 300


def test_initialize_series_creates_each_given_series_at_zero() -> None:
    metrics.initialize_series(ops=["op_a"], failure_reasons=["why_a"], dead_letter_reasons=["dl"])
    sample = metrics.REGISTRY.get_sample_value
    assert sample("chainworker_tx_submitted_total", {"op": "op_a"}) == 0
    assert sample("chainworker_tx_failed_total", {"op": "op_a", "reason": "why_a"}) == 0
    assert sample("chainworker_jobs_dead_lettered_total", {"reason": "dl"}) == 0
    assert sample("chainworker_tx_submitted_total", {"op": "op_b"}) is None


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
