"""Every Prometheus metric chainworker exports, defined once, in one registry.

Naming follows Prometheus conventions: base units (seconds, lamports), `_total`
counters, `_seconds` histograms, and only bounded label values (no tenant, ticket or
signature ids). Label values come from the callers' vocabulary (lifecycle.model's
enums, the chain layer's endpoint labels and error kinds), which is bounded by
construction; this module knows none of chainworker's names.

`REGISTRY` is served by the worker's exporter (jobs/exporter.py, which also computes
the database gauges declared here) and by the API's `/metrics` route.
`rpc_observer` is the hook the chain layer's `SolanaRpc` calls after every request.

The declaration (`metric_specs`) keeps each family's kind and label names, which
prometheus_client does not expose publicly: the alert-rule and dashboard checks read it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

MetricKind = Literal["counter", "gauge", "histogram"]

# Kinds after which an endpoint counts as down until a call to it succeeds again
# (chain/errors.py's kinds). JSON-RPC errors and rate limits mean the node answered.
ENDPOINT_DOWN_KINDS = frozenset({"timeout", "transport", "unavailable"})
TOP_UP_OUTCOMES = ("sent", "confirmed", "failed", "expired")


@dataclass(frozen=True)
class MetricSpec:
    """What one metric exposes: its family name, type and label names."""

    name: str
    kind: MetricKind
    labels: tuple[str, ...]

    def series(self) -> dict[str, frozenset[str]]:
        """The series names this metric exposes, each with its label names."""
        labels = frozenset(self.labels)
        if self.kind == "counter":
            return {f"{self.name}_total": labels, f"{self.name}_created": labels}
        if self.kind == "histogram":
            return {
                f"{self.name}_bucket": labels | {"le"},
                f"{self.name}_sum": labels,
                f"{self.name}_count": labels,
                f"{self.name}_created": labels,
            }
        return {self.name: labels}


REGISTRY = CollectorRegistry(auto_describe=True)
ProcessCollector(registry=REGISTRY)
PlatformCollector(registry=REGISTRY)
GCCollector(registry=REGISTRY)

_SPECS: dict[str, MetricSpec] = {}


def _remember(name: str, kind: MetricKind, labels: Iterable[str]) -> None:
    if name in _SPECS:
        raise ValueError(f"metric {name} defined twice")
    _SPECS[name] = MetricSpec(name, kind, tuple(labels))


def _counter(name: str, doc: str, labels: tuple[str, ...] = ()) -> Counter:
    base = name.removesuffix("_total")
    _remember(base, "counter", labels)
    return Counter(base, doc, labels, registry=REGISTRY)


def _gauge(name: str, doc: str, labels: tuple[str, ...] = ()) -> Gauge:
    _remember(name, "gauge", labels)
    return Gauge(name, doc, labels, registry=REGISTRY)


def _histogram(
    name: str, doc: str, buckets: tuple[float, ...], labels: tuple[str, ...] = ()
) -> Histogram:
    _remember(name, "histogram", labels)
    return Histogram(name, doc, labels, buckets=buckets, registry=REGISTRY)


# Request recorded -> confirmed: sub-second on a localnet, up to minutes with retries.
CONFIRMATION_BUCKETS = (
    0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 7.5, 10.0, 15.0, 20.0, 30.0, 45.0, 60.0,
    90.0, 120.0, 180.0, 300.0,
)  # fmt: skip
# Slots between the blockhash's slot and landing; a blockhash lives 150 blocks.
LANDING_SLOT_BUCKETS = (0, 1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 150, 200)
RPC_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
GROUP_BUCKETS = (1, 2, 4, 8, 16, 32, 64)
JOB_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)

# --- transactions ----------------------------------------------------------
TX_SUBMITTED = _counter(
    "chainworker_tx_submitted_total", "Signed transactions recorded and sent.", ("op",)
)
TX_CONFIRMED = _counter(
    "chainworker_tx_confirmed_total", "Transactions confirmed on chain.", ("op",)
)
TX_FAILED = _counter(
    "chainworker_tx_failed_total",
    "Transactions that ended failed, by bounded reason.",
    ("op", "reason"),
)
TX_EXPIRED = _counter(
    "chainworker_tx_expired_total",
    "Requests whose last allowed attempt expired (final, no more retries).",
    ("op",),
)
TX_RETRIES = _counter(
    "chainworker_tx_retries_total",
    "Expired attempts replaced by a new attempt with a fresh blockhash.",
    ("op",),
)
TX_REBROADCASTS = _counter(
    "chainworker_tx_rebroadcasts_total", "Re-sends of unconfirmed transaction bytes."
)
TX_CONFIRMATION_SECONDS = _histogram(
    "chainworker_tx_confirmation_seconds",
    "Time from request recorded to transaction confirmed.",
    CONFIRMATION_BUCKETS,
    ("op",),
)
TX_LANDING_SLOTS = _histogram(
    "chainworker_tx_landing_slots",
    "Slots between the attempt's blockhash and the slot it landed in.",
    LANDING_SLOT_BUCKETS,
)
FEES_LAMPORTS = _counter(
    "chainworker_fees_lamports_total", "Fees and rent paid, in lamports.", ("op",)
)
RENT_RECLAIMED_LAMPORTS = _counter(
    "chainworker_rent_reclaimed_lamports_total",
    "Rent given back by the accounts confirmed burns closed, in lamports.",
)
# Micro-lamports per compute unit; and lamports per transaction (5,000 per signature).
UNIT_PRICE_BUCKETS = (0, 1, 10, 100, 1_000, 10_000, 50_000, 100_000, 500_000, 1_000_000, 10_000_000)
TX_FEE_BUCKETS = (
    5_000, 10_000, 15_000, 20_000, 30_000, 50_000, 100_000, 500_000, 1_000_000, 10_000_000,
)  # fmt: skip
LANDED_UNIT_PRICE = _histogram(
    "chainworker_tx_landed_unit_price_microlamports",
    "Compute-unit price of the attempts that landed, in micro-lamports per unit.",
    UNIT_PRICE_BUCKETS,
    ("op",),
)
TX_FEE = _histogram(
    "chainworker_tx_fee_lamports",
    "Fee of each landed transaction (signatures and priority fee), in lamports.",
    TX_FEE_BUCKETS,
    ("op",),
)
FEE_PAYER_BALANCE = _gauge(
    "chainworker_fee_payer_balance_lamports",
    "Balance of each fee payer of the pool, as the top-up round last read it.",
    ("payer",),
)
FEE_PAYER_MIN_BALANCE = _gauge(
    "chainworker_fee_payer_min_balance_lamports",
    "The balance below which a fee payer is not used and is topped up.",
)
FEE_PAYER_TOP_UPS = _counter(
    "chainworker_fee_payer_top_ups_total",
    "Top-ups of fee payers from the authority, by outcome (sent, confirmed, failed, "
    "expired).",
    ("outcome",),
)
SPEND_LIMIT_REFUSALS = _counter(
    "chainworker_spend_limit_refusals_total",
    "Requests refused because they would pass a tenant's spending limit.",
)
QUARANTINED = _counter(
    "chainworker_quarantined_total",
    "Rows set aside because they cannot be handled (outbox rows, transactions), by kind and "
    "bounded reason; see last_error on the row.",
    ("kind", "reason"),
)
TENANT_VIOLATIONS = _counter(
    "chainworker_tenant_violations_total",
    "API lookups of another tenant's objects: recorded in tenant_access_violations, "
    "suppressed (over the bound per token and minute) or dropped (recorder queue full).",
    ("outcome",),
)

# --- rpc -------------------------------------------------------------------
RPC_REQUEST_SECONDS = _histogram(
    "chainworker_rpc_request_seconds",
    "Solana JSON-RPC call latency, failures included.",
    RPC_BUCKETS,
    ("endpoint", "method"),
)
RPC_ERRORS = _counter(
    "chainworker_rpc_errors_total", "Solana JSON-RPC call failures.", ("endpoint", "kind")
)
RPC_ENDPOINT_UP = _gauge(
    "chainworker_rpc_endpoint_up",
    "1 when the endpoint is considered healthy by this process, else 0.",
    ("endpoint",),
)
BLOCK_HEIGHT = _gauge(
    "chainworker_block_height", "Latest block height seen at the configured commitment."
)

# --- jobs ------------------------------------------------------------------
JOB_SECONDS = _histogram(
    "chainworker_job_seconds",
    "Duration of worker jobs (mint_ticket, transfer_ticket, burn_ticket) and loop passes "
    "(confirm_round, sweep).",
    JOB_BUCKETS,
    ("job",),
)

SUBMIT_GROUP_SIZE = _histogram(
    "chainworker_submit_group_size",
    "Requests recorded per group-commit transaction (1 means the jobs arrive one by one).",
    GROUP_BUCKETS,
)
JOBS_DEAD_LETTERED = _counter(
    "chainworker_jobs_dead_lettered_total",
    "Job payloads that failed the job schema: never run, kept in <queue>:dead.",
    ("reason",),
)

# --- database gauges: declared here, computed by one worker at a time
# (jobs/exporter.py's DatabaseGauges collector) ---------------------------
DB_GAUGES: dict[str, tuple[str, tuple[str, ...]]] = {
    "chainworker_tx_live": ("Live transactions by status.", ("status",)),
    "chainworker_tx_oldest_live_seconds": (
        "Age of the oldest live transaction (0 when none).",
        (),
    ),
    "chainworker_requests_pending": (
        "Recorded requests with neither a live transaction nor an outcome.",
        (),
    ),
    "chainworker_outbox_unprocessed": ("Outbox rows not yet processed.", ()),
    "chainworker_queue_depth": ("Jobs waiting in the queue.", ("queue",)),
    "chainworker_spend_limit_utilization_ratio": (
        "Highest spent/limit ratio over all tenants for the period.",
        ("period",),
    ),
    "chainworker_db_gauges_refreshed_timestamp_seconds": (
        "Unix time of the last database gauge refresh by the lock holder.",
        (),
    ),
}
for _name, (_doc, _labels) in DB_GAUGES.items():
    _remember(_name, "gauge", _labels)




def metric_specs() -> dict[str, MetricSpec]:
    """Every chainworker metric by family name (for tests and documentation)."""
    return dict(_SPECS)


def exposed_series() -> dict[str, frozenset[str]]:
    """Every series name chainworker can expose, with its label names."""
    series: dict[str, frozenset[str]] = {}
    for spec in _SPECS.values():
        series.update(spec.series())
    return series


def rpc_observer(endpoint: str, method: str, seconds: float, error_kind: str | None) -> None:
    """The hook `SolanaRpc` calls after each RPC call; `error_kind` None means success.

    `endpoint` is the chain layer's label (index, host and port: no path, no query) and
    `error_kind` one of its ChainError kinds, so both are bounded already. Also keeps
    chainworker_rpc_endpoint_up as this process last saw the endpoint: 1 after a success,
    0 after a timeout, transport failure or unavailable answer.
    """
    RPC_REQUEST_SECONDS.labels(endpoint=endpoint, method=method).observe(max(0.0, seconds))
    if error_kind is None:
        RPC_ENDPOINT_UP.labels(endpoint=endpoint).set(1)
        return
    RPC_ERRORS.labels(endpoint=endpoint, kind=error_kind).inc()
    if error_kind in ENDPOINT_DOWN_KINDS:
        RPC_ENDPOINT_UP.labels(endpoint=endpoint).set(0)


def record_failed(op: str, reason: str) -> None:
    """Count a transaction that ended failed on chain, by its bounded reason."""
    TX_FAILED.labels(op=op, reason=reason).inc()


def record_confirmed(op: str, seconds: float, landing_slots: int | None = None) -> None:
    TX_CONFIRMED.labels(op=op).inc()
    TX_CONFIRMATION_SECONDS.labels(op=op).observe(max(0.0, seconds))
    if landing_slots is not None:
        TX_LANDING_SLOTS.observe(max(0, landing_slots))


def record_landed_fee(op: str, unit_price: int, fee: int) -> None:
    LANDED_UNIT_PRICE.labels(op=op).observe(max(0, unit_price))
    TX_FEE.labels(op=op).observe(max(0, fee))


def initialize_series(
    ops: Iterable[str], failure_reasons: Iterable[str], dead_letter_reasons: Iterable[str]
) -> None:
    """Create the zero-valued series, so rate()/increase() see the first event.

    Called by each process at start with lifecycle.model's vocabulary (this module knows
    none of chainworker's names).
    """
    reasons = tuple(failure_reasons)
    for op in ops:
        for counter in (TX_SUBMITTED, TX_CONFIRMED, TX_EXPIRED, TX_RETRIES, FEES_LAMPORTS):
            counter.labels(op=op)
        TX_CONFIRMATION_SECONDS.labels(op=op)
        LANDED_UNIT_PRICE.labels(op=op)
        TX_FEE.labels(op=op)
        for reason in reasons:
            TX_FAILED.labels(op=op, reason=reason)
    for reason in dead_letter_reasons:
        JOBS_DEAD_LETTERED.labels(reason=reason)
    for outcome in TOP_UP_OUTCOMES:
        FEE_PAYER_TOP_UPS.labels(outcome=outcome)
