"""Keep Redis honest to Postgres, and export the numbers that describe the database.

The sweeper re-enqueues recorded requests that have neither a live transaction nor
an outcome (after a Redis restart, a lost job, a worker killed mid-job). The job id
is the request id, so a request whose job is still queued is not doubled.

The database gauges are computed by one process at a time: whichever holds the
advisory lock; the others stop exporting them.
"""

from __future__ import annotations

import asyncio
import time

from chainworker.db import gauges, requests
from chainworker.jobs.context import WorkerContext
from chainworker.jobs.enqueue import JOB_FOR_OPERATION, enqueue_jobs
from chainworker.jobs.exporter import DATABASE_GAUGES
from chainworker.lifecycle.model import QuarantineReason
from chainworker.obs import logs, metrics

SWEEP_BATCH = 5000
GAUGES_LOCK_KEY = 0x63_77_67_61  # "cwga": the advisory lock electing the gauge exporter
GAUGES_INTERVAL_SECONDS = 5.0

log = logs.get_logger(__name__)


async def sweep_once(ctx: WorkerContext) -> int:
    """Re-enqueue stale queued requests; returns how many were put back on the queue."""
    async with ctx.pool.acquire() as conn:
        stale = await requests.stale_requests(conn, ctx.settings.sweeper_grace_seconds, SWEEP_BATCH)
    if not stale:
        return 0
    # A row no job can carry out (the table's own check forbids it, but a bad row must not
    # stop the others however it got there) is left out, counted and logged.
    runnable = [row for row in stale if row[2] in JOB_FOR_OPERATION]
    for request_id, tenant_id, operation in stale:
        if operation not in JOB_FOR_OPERATION:
            metrics.QUARANTINED.labels(kind="request", reason=QuarantineReason.BAD_ROW).inc()
            log.error("queued request names no operation a job carries out; left out",
                      request_id=str(request_id), tenant_id=str(tenant_id),
                      operation=str(operation)[:40])
    added = await enqueue_jobs(ctx.arq, ctx.settings.queue_name, runnable)
    if added:
        log.info("sweeper re-enqueued lost requests", count=added, seen=len(stale))
    return added


async def run_forever(ctx: WorkerContext) -> None:
    while True:
        started = time.monotonic()
        try:
            await sweep_once(ctx)
        except asyncio.CancelledError:
            raise
        except Exception as error:  # keep sweeping after a transient failure
            log.warning("sweep failed", error=str(error))
        metrics.JOB_SECONDS.labels(job="sweep").observe(time.monotonic() - started)
        await asyncio.sleep(ctx.settings.sweeper_interval_seconds)


async def export_database_gauges(ctx: WorkerContext) -> None:
    """Hold the gauges lock on one connection and refresh the gauges while holding it."""
    while True:
        try:
            async with ctx.pool.acquire() as conn:
                while not await gauges.try_lock(conn, GAUGES_LOCK_KEY):
                    DATABASE_GAUGES.release()
                    await asyncio.sleep(GAUGES_INTERVAL_SECONDS)
                try:
                    while True:
                        figures = await gauges.read_figures(conn)
                        depth = await ctx.arq.zcard(ctx.settings.queue_name)
                        DATABASE_GAUGES.refresh(
                            live_by_status=figures.live_by_status,
                            oldest_live_seconds=figures.oldest_live_seconds,
                            requests_pending=figures.queued_requests,
                            outbox_unprocessed=figures.outbox_unprocessed,
                            queue_depth={ctx.settings.queue_name: int(depth)},
                            spend_utilization=figures.spend_utilization,
                        )
                        await asyncio.sleep(GAUGES_INTERVAL_SECONDS)
                finally:
                    DATABASE_GAUGES.release()
                    await gauges.unlock(conn, GAUGES_LOCK_KEY)
        except asyncio.CancelledError:
            raise
        except Exception as error:  # lost the connection: let another process take over
            log.warning("database gauges stopped", error=str(error))
            await asyncio.sleep(GAUGES_INTERVAL_SECONDS)
