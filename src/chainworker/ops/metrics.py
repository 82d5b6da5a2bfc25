"""Every Prometheus metric chainworker exports, defined once.

Naming follows Prometheus conventions: base units (seconds, lamports), `_total`
counters, `_seconds` histograms, and only bounded label values (no tenant,
ticket or signature ids). Helpers below map free-form values (error text, RPC
URLs, method names) onto bounded label sets before they reach a metric.

All metrics live in one dedicated registry, `REGISTRY`, served by the worker on
its own port (`start_metrics_server`) and by the API on `/metrics`
(`render_latest`).

Database gauges (live transactions by status, oldest live age, pending requests,
outbox backlog, queue depth, spend utilization) are computed by one process at
a time: the worker that holds the Postgres advisory lock calls
`DATABASE_GAUGES.refresh(...)` and, when it loses the lock,
`DATABASE_GAUGES.release()`. A process that is not the holder exports none of
these series, so `max()` across workers in PromQL is the holder's value and a
former holder's numbers never linger. `chainworker_db_gauges_refreshed_timestamp_seconds`
tells whether anyone is computing them at all.

`rpc_observer` is the hook the chain layer's `SolanaRpc` calls after every request;
it also keeps `chainworker_rpc_endpoint_up` as this process last saw each endpoint.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Literal
from wsgiref.simple_server import WSGIServer

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    start_http_server,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from chainworker.ops.logs import redact_url

MetricKind = Literal["counter", "gauge", "histogram"]

OPS: tuple[str, ...] = ("mint", "transfer", "burn")
# Statuses of pending_transactions that are still in flight.
LIVE_STATUSES: tuple[str, ...] = ("pending", "confirming")
SPEND_PERIODS: tuple[str, ...] = ("daily", "weekly", "monthly")

# Bounded failure reasons for chainworker_tx_failed_total{reason}; see failure_reason().
FAILURE_REASONS: tuple[str, ...] = (
    "already_in_use",
    "insufficient_funds",
    "insufficient_lamports",
    "blockhash_not_found",
    "signature_invalid",
    "compute_exceeded",
    "too_large",
    "account_not_found",
    "invalid_account",
    "program_error",
    "rpc_error",
    "spend_limit",
    "invalid_request",
    "other",
)

# Bounded kinds for chainworker_rpc_errors_total{kind}: the chain layer's error kinds
# (chain/errors.py); see rpc_error_kind().
RPC_ERROR_KINDS: tuple[str, ...] = (
    "timeout",
    "transport",
    "rate_limited",
    "unavailable",
    "rpc",
    "bad_response",
    "other",
)
# Kinds after which an endpoint counts as down until a call to it succeeds again.
# JSON-RPC errors and rate limits mean the node answered.
_ENDPOINT_DOWN_KINDS = frozenset({"timeout", "transport", "unavailable"})


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
# Bounded reasons for chainworker_jobs_dead_lettered_total{reason} (jobs/codec.py).
DEAD_LETTER_REASONS: tuple[str, ...] = (
    "oversized", "not_json", "bad_shape", "unknown_function", "bad_args",
)
JOBS_DEAD_LETTERED = _counter(
    "chainworker_jobs_dead_lettered_total",
    "Job payloads that failed the job schema: never run, kept in <queue>:dead.",
    ("reason",),
)

# --- database gauges (one process at a time, see DatabaseGauges) ----------
_DB_GAUGES: dict[str, tuple[str, tuple[str, ...]]] = {
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
for _name, (_doc, _labels) in _DB_GAUGES.items():
    _remember(_name, "gauge", _labels)


@dataclass(frozen=True)
class _Snapshot:
    live_by_status: dict[str, int]
    oldest_live_seconds: float
    requests_pending: int
    outbox_unprocessed: int
    queue_depth: dict[str, int]
    spend_utilization: dict[str, float]
    refreshed_at: float


class DatabaseGauges(Collector):
    """Gauges describing the database, exported only by the process computing them.

    Call `refresh` only while holding the Postgres advisory lock that elects the
    one process computing these numbers; call `release` when the lock is lost or
    on shutdown, so this process stops exporting them.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._snapshot: _Snapshot | None = None

    def refresh(
        self,
        *,
        live_by_status: Mapping[str, int],
        oldest_live_seconds: float,
        requests_pending: int,
        outbox_unprocessed: int,
        queue_depth: Mapping[str, int],
        spend_utilization: Mapping[str, float] | None = None,
    ) -> None:
        """Replace the exported values. Missing live statuses and spend periods read as 0."""
        live = {status: 0 for status in LIVE_STATUSES}
        live.update({status: int(count) for status, count in live_by_status.items()})
        spend = {period: 0.0 for period in SPEND_PERIODS}
        spend.update({period: float(ratio) for period, ratio in (spend_utilization or {}).items()})
        snapshot = _Snapshot(
            live_by_status=live,
            oldest_live_seconds=max(0.0, float(oldest_live_seconds)),
            requests_pending=int(requests_pending),
            outbox_unprocessed=int(outbox_unprocessed),
            queue_depth={queue: int(depth) for queue, depth in queue_depth.items()},
            spend_utilization=spend,
            refreshed_at=time.time(),
        )
        with self._lock:
            self._snapshot = snapshot

    def release(self) -> None:
        """Stop exporting: another process computes these numbers now."""
        with self._lock:
            self._snapshot = None

    @property
    def active(self) -> bool:
        with self._lock:
            return self._snapshot is not None

    def describe(self) -> Iterable[Metric]:
        for name, (doc, labels) in _DB_GAUGES.items():
            yield GaugeMetricFamily(name, doc, labels=list(labels))

    def collect(self) -> Iterable[Metric]:
        with self._lock:
            snapshot = self._snapshot
        if snapshot is None:
            return
        yield from self._families(snapshot)

    @staticmethod
    def _families(snap: _Snapshot) -> Iterator[Metric]:
        def family(name: str) -> GaugeMetricFamily:
            doc, labels = _DB_GAUGES[name]
            return GaugeMetricFamily(name, doc, labels=list(labels))

        live = family("chainworker_tx_live")
        for status, count in sorted(snap.live_by_status.items()):
            live.add_metric([status], count)
        yield live
        for name, value in (
            ("chainworker_tx_oldest_live_seconds", snap.oldest_live_seconds),
            ("chainworker_requests_pending", snap.requests_pending),
            ("chainworker_outbox_unprocessed", snap.outbox_unprocessed),
            ("chainworker_db_gauges_refreshed_timestamp_seconds", snap.refreshed_at),
        ):
            single = family(name)
            single.add_metric([], value)
            yield single
        queue = family("chainworker_queue_depth")
        for name, depth in sorted(snap.queue_depth.items()):
            queue.add_metric([name], depth)
        yield queue
        spend = family("chainworker_spend_limit_utilization_ratio")
        for period, ratio in sorted(snap.spend_utilization.items()):
            spend.add_metric([period], ratio)
        yield spend


DATABASE_GAUGES = DatabaseGauges()
REGISTRY.register(DATABASE_GAUGES)


def metric_specs() -> dict[str, MetricSpec]:
    """Every chainworker metric by family name (for tests and documentation)."""
    return dict(_SPECS)


def exposed_series() -> dict[str, frozenset[str]]:
    """Every series name chainworker can expose, with its label names."""
    series: dict[str, frozenset[str]] = {}
    for spec in _SPECS.values():
        series.update(spec.series())
    return series


# --- bounded labels ---------------------------------------------------------


def op_label(op: str) -> str:
    """The op label for a mint/transfer/burn; anything else is a programming error."""
    if op not in OPS:
        raise ValueError(f"unknown op {op!r}; expected one of {', '.join(OPS)}")
    return op


# Checked in order; the first pattern found in the error text names the reason.
_REASON_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (reason, re.compile(pattern, re.IGNORECASE))
    for reason, pattern in (
        ("spend_limit", r"spend(ing)?[ _-]?limit"),
        ("already_in_use", r"already in use|AccountAlreadyInUse|AccountAlreadyInitialized"),
        (
            "insufficient_lamports",
            r"InsufficientFundsFor(Fee|Rent)|insufficient funds for (fee|rent)"
            r"|insufficient lamports",
        ),
        ("insufficient_funds", r"InsufficientFunds|insufficient funds"),
        ("blockhash_not_found", r"blockhash not found|BlockhashNotFound"),
        ("signature_invalid", r"signature verification|SignatureFailure|invalid signature"),
        ("compute_exceeded", r"ComputationalBudgetExceeded|exceeded CUs|compute budget"),
        ("too_large", r"too large|packet size|exceeds the maximum"),
        (
            "account_not_found",
            r"AccountNotFound|account not found|could not find account|no record of a prior credit",
        ),
        (
            "invalid_account",
            r"InvalidAccountData|IncorrectProgramId|InvalidAccountOwner|owner does not match"
            r"|invalid account",
        ),
        (
            "rpc_error",
            r"timed? ?out|timeout|connection|Too Many Requests|\b429\b|\b50[234]\b"
            r"|service unavailable",
        ),
        (
            "invalid_request",
            r"unknown ticket|not allowed in state|invalid wallet|not accepted|already minted"
            r"|invalid request",
        ),
        # Measured on the localnet (see DESIGN.md): a second mint fails with Custom 0
        # ("already in use"), a replayed transfer or burn with Custom 1 (InsufficientFunds).
        ("already_in_use", r"""['"]?Custom['"]?\s*[:(]\s*0\b|custom program error: 0x0\b"""),
        ("insufficient_funds", r"""['"]?Custom['"]?\s*[:(]\s*1\b|custom program error: 0x1\b"""),
        ("program_error", r"InstructionError|custom program error|Custom"),
    )
)


def failure_reason(error: object) -> str:
    """Map an error (text, exception, or a JSON-RPC `err` value) to a bounded reason label."""
    text = error if isinstance(error, str) else repr(error)
    if not text or text in ("None", "''"):
        return "other"
    if text in FAILURE_REASONS:
        return text
    for reason, pattern in _REASON_PATTERNS:
        if pattern.search(text):
            return reason
    return "other"


_RPC_KIND_ALIASES = {
    "readtimeout": "timeout",
    "connecttimeout": "timeout",
    "connection": "transport",
    "connecterror": "transport",
    "429": "rate_limited",
    "500": "unavailable",
    "502": "unavailable",
    "503": "unavailable",
    "504": "unavailable",
}


def rpc_error_kind(kind: str) -> str:
    """Bound an RPC error kind to RPC_ERROR_KINDS (unknown kinds become "other")."""
    normalized = kind.strip().lower().replace("-", "_").replace(" ", "_")
    if normalized in RPC_ERROR_KINDS:
        return normalized
    return _RPC_KIND_ALIASES.get(normalized, "other")


# Labels the chain layer already made ("0:api.mainnet-beta.solana.com:443"): no path, no query.
_SAFE_ENDPOINT = re.compile(r"^[A-Za-z0-9_.:\-\[\]]{1,100}$")


def endpoint_label(endpoint: str) -> str:
    """A secret-free endpoint label.

    A URL is reduced to scheme://host[:port] (paths and queries often carry API keys);
    a label that is already bare (no slashes, no query) is kept as it is.
    """
    if "://" not in endpoint:
        return endpoint if _SAFE_ENDPOINT.match(endpoint) else "invalid"
    label = redact_url(endpoint)
    return label if _SAFE_ENDPOINT.match(label.partition("://")[2]) else "invalid"


_METHOD = re.compile(r"^[A-Za-z][A-Za-z0-9]{0,47}$")


def method_label(method: str) -> str:
    """A JSON-RPC method name, or "other" when it does not look like one."""
    return method if _METHOD.match(method) else "other"


# --- recording helpers --------------------------------------------------------


def rpc_observer(endpoint: str, method: str, seconds: float, error_kind: str | None) -> None:
    """The hook `SolanaRpc` calls after each RPC call; `error_kind` None means success.

    Also keeps chainworker_rpc_endpoint_up as this process last saw the endpoint: 1 after
    a success, 0 after a timeout, transport failure or unavailable answer.
    """
    endpoint_name = endpoint_label(endpoint)
    RPC_REQUEST_SECONDS.labels(endpoint=endpoint_name, method=method_label(method)).observe(
        max(0.0, seconds)
    )
    if error_kind is None:
        RPC_ENDPOINT_UP.labels(endpoint=endpoint_name).set(1)
        return
    kind = rpc_error_kind(error_kind)
    RPC_ERRORS.labels(endpoint=endpoint_name, kind=kind).inc()
    if kind in _ENDPOINT_DOWN_KINDS:
        RPC_ENDPOINT_UP.labels(endpoint=endpoint_name).set(0)


def record_failed(op: str, error: object) -> str:
    """Count a failed transaction; returns the reason label used."""
    reason = failure_reason(error)
    TX_FAILED.labels(op=op_label(op), reason=reason).inc()
    return reason


def record_confirmed(op: str, seconds: float, landing_slots: int | None = None) -> None:
    TX_CONFIRMED.labels(op=op_label(op)).inc()
    TX_CONFIRMATION_SECONDS.labels(op=op).observe(max(0.0, seconds))
    if landing_slots is not None:
        TX_LANDING_SLOTS.observe(max(0, landing_slots))


def _initialize_children() -> None:
    # Zero-valued series exist from the start, so rate()/increase() see the first event.
    for op in OPS:
        for counter in (TX_SUBMITTED, TX_CONFIRMED, TX_EXPIRED, TX_RETRIES, FEES_LAMPORTS):
            counter.labels(op=op)
        TX_CONFIRMATION_SECONDS.labels(op=op)
        for reason in FAILURE_REASONS:
            TX_FAILED.labels(op=op, reason=reason)
    for reason in DEAD_LETTER_REASONS:
        JOBS_DEAD_LETTERED.labels(reason=reason)


_initialize_children()


# --- exposition -----------------------------------------------------------------


@dataclass
class MetricsServer:
    """A running /metrics HTTP server on its own thread."""

    port: int
    _server: WSGIServer
    _thread: threading.Thread

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def start_metrics_server(port: int, addr: str = "127.0.0.1") -> MetricsServer:
    """Serve REGISTRY on http://addr:port/metrics (port 0 picks a free port).

    Loopback unless told otherwise (METRICS_HOST): the process's figures are for the scraper.
    """
    server, thread = start_http_server(port, addr=addr, registry=REGISTRY)
    return MetricsServer(port=server.server_port, _server=server, _thread=thread)


def render_latest() -> tuple[bytes, str]:
    """The exposition body and its content type, for the API's /metrics route."""
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
