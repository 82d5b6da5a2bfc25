"""Keep Redis honest to Postgres: the sweeper's pass.

The sweeper re-enqueues recorded requests that have neither a live transaction nor
an outcome (after a Redis restart, a lost job, a worker killed mid-job). The job id
is the request id, so a request whose job is still queued is not doubled.
"""

from __future__ import annotations

from chainworker.db import requests
from chainworker.lifecycle.model import QuarantineReason, TxOp
from chainworker.obs import logs, metrics
from chainworker.pipeline.context import JobQueue, PipelineContext, QueuedJob

SWEEP_BATCH = 5000

log = logs.get_logger(__name__)


async def sweep_once(ctx: PipelineContext, queue: JobQueue) -> int:
    """Re-enqueue stale queued requests; returns how many were put back on the queue."""
    async with ctx.pool.acquire() as conn:
        stale = await requests.stale_requests(conn, ctx.settings.sweeper_grace_seconds, SWEEP_BATCH)
    if not stale:
        return 0
    runnable: list[QueuedJob] = []
    for request_id, tenant_id, operation in stale:
        try:
            runnable.append((request_id, tenant_id, TxOp(operation)))
        except ValueError:
            # A row no job can carry out (the table's own check forbids it, but a bad row
            # must not stop the others however it got there) is left out, counted and logged.
            metrics.QUARANTINED.labels(kind="request", reason=QuarantineReason.BAD_ROW).inc()
            log.error("queued request names no operation a job carries out; left out",
                      request_id=str(request_id), tenant_id=str(tenant_id),
                      operation=str(operation)[:40])
    added = await queue.enqueue(runnable)
    if added:
        log.info("sweeper re-enqueued lost requests", count=added, seen=len(stale))
    return added
