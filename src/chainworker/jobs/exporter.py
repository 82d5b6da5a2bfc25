"""The worker's metrics exporter: its /metrics HTTP server and the database gauges.

The database gauges (live transactions by status, oldest live age, pending requests,
outbox backlog, queue depth, spend utilization; declared in obs/metrics.py) are
computed by one worker at a time: the one holding the Postgres advisory lock calls
`DATABASE_GAUGES.refresh(...)` and, when it loses the lock, `DATABASE_GAUGES.release()`.
A process that is not the holder exports none of these series, so `max()` across
workers in PromQL is the holder's value and a former holder's numbers never linger.
`chainworker_db_gauges_refreshed_timestamp_seconds` tells whether anyone computes them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from wsgiref.simple_server import WSGIServer

from prometheus_client import start_http_server
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from chainworker.lifecycle.model import (
    LIVE_STATUSES,
    DeadLetterReason,
    FailureReason,
    SpendPeriod,
    TxOp,
)
from chainworker.obs import metrics

_LIVE = tuple(sorted(status.value for status in LIVE_STATUSES))
_PERIODS = tuple(period.value for period in SpendPeriod)


def initialize_series() -> None:
    """The zero-valued series of every operation and reason, before their first event."""
    metrics.initialize_series(
        ops=TxOp, failure_reasons=FailureReason, dead_letter_reasons=DeadLetterReason
    )


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
        live = {status: 0 for status in _LIVE}
        live.update({status: int(count) for status, count in live_by_status.items()})
        spend = {period: 0.0 for period in _PERIODS}
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
        for name, (doc, labels) in metrics.DB_GAUGES.items():
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
            doc, labels = metrics.DB_GAUGES[name]
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
metrics.REGISTRY.register(DATABASE_GAUGES)


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
    """Serve the metrics registry on http://addr:port/metrics (port 0 picks a free port).

    Loopback unless told otherwise (METRICS_HOST): the process's figures are for the scraper.
    """
    server, thread = start_http_server(port, addr=addr, registry=metrics.REGISTRY)
    return MetricsServer(port=server.server_port, _server=server, _thread=thread)
