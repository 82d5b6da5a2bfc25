"""The loops a worker runs beside its jobs: confirmation, outbox relay, sweeper, gauges.

Each pass is the pipeline's (`confirm.run_once`, `relay.relay_once`, `sweep.sweep_once`);
here is only the rhythm, and the rule that a loop outlives any one failed pass.
"""

from __future__ import annotations

import asyncio
import time

from chainworker.db import gauges
from chainworker.jobs.exporter import DATABASE_GAUGES
from chainworker.jobs.queue import ArqQueue
from chainworker.obs import logs, metrics
from chainworker.pipeline import confirm, event_groups, relay, sweep, top_up
from chainworker.pipeline.context import PipelineContext
from chainworker.pipeline.errors import not_the_rows_fault

GAUGES_LOCK_KEY = 0x63_77_67_61  # "cwga": the advisory lock electing the gauge exporter
GAUGES_INTERVAL_SECONDS = 5.0

log = logs.get_logger(__name__)


async def confirm_forever(ctx: PipelineContext, queue: ArqQueue | None = None) -> None:
    interval = ctx.settings.confirm_interval_seconds
    while True:
        started = time.monotonic()
        try:
            handled = await confirm.run_once(ctx, queue)
        except asyncio.CancelledError:
            raise
        except Exception as error:  # the loop must outlive any one bad round
            if not_the_rows_fault(error):  # the database or RPC is away: said once, briefly
                log.warning("confirmation round failed; will retry", error=str(error))
            else:
                log.exception("confirmation round failed", error=str(error))
            handled = 0
        metrics.JOB_SECONDS.labels(job="confirm_round").observe(time.monotonic() - started)
        if handled < confirm.CLAIM_LIMIT:
            await asyncio.sleep(max(0.0, interval - (time.monotonic() - started)))


async def relay_forever(ctx: PipelineContext, queue: ArqQueue) -> None:
    settings = ctx.settings
    while True:
        try:
            result = await relay.relay_once(
                ctx.pool,
                queue,
                max_attempts=settings.outbox_max_attempts,
                retry_seconds=settings.outbox_retry_seconds,
            )
            if result.claimed >= relay.BATCH_SIZE:
                continue  # more waiting: no pause
        except asyncio.CancelledError:
            raise
        except Exception as error:  # keep relaying after a transient failure
            log.warning("outbox relay failed", error=repr(error))
        await asyncio.sleep(settings.outbox_poll_interval_seconds)


async def sweep_forever(ctx: PipelineContext, queue: ArqQueue) -> None:
    while True:
        started = time.monotonic()
        try:
            await sweep.sweep_once(ctx, queue)
        except asyncio.CancelledError:
            raise
        except Exception as error:  # keep sweeping after a transient failure
            log.warning("sweep failed", error=str(error))
        metrics.JOB_SECONDS.labels(job="sweep").observe(time.monotonic() - started)
        await asyncio.sleep(ctx.settings.sweeper_interval_seconds)


TOP_UP_INTERVAL_SECONDS = 5.0
# While a top-up is in flight its payer is unused: look again soon.
TOP_UP_IN_FLIGHT_INTERVAL_SECONDS = 0.5


async def top_up_forever(ctx: PipelineContext) -> None:
    """Keep the fee payers funded (nothing to do without a pool)."""
    while ctx.payers.payers:
        interval = TOP_UP_INTERVAL_SECONDS
        try:
            if (await top_up.top_up_round(ctx)).live:
                interval = TOP_UP_IN_FLIGHT_INTERVAL_SECONDS
        except asyncio.CancelledError:
            raise
        except Exception as error:  # keep topping up after a transient failure
            log.warning("fee payer top-up round failed", error=str(error))
        await asyncio.sleep(interval)


EVENT_GROUPS_INTERVAL_SECONDS = 5.0
# While a group's creation is in flight, verifies of its event wait: look again soon.
EVENT_GROUPS_IN_FLIGHT_INTERVAL_SECONDS = 0.5


async def event_groups_forever(ctx: PipelineContext) -> None:
    """Settle event groups' creations: recorded by `chainworker event create-group`, they
    are confirmed, rebroadcast or expired here whether or not that command still runs."""
    while True:
        interval = EVENT_GROUPS_INTERVAL_SECONDS
        try:
            if await event_groups.settle_round(ctx):
                interval = EVENT_GROUPS_IN_FLIGHT_INTERVAL_SECONDS
        except asyncio.CancelledError:
            raise
        except Exception as error:  # keep settling after a transient failure
            log.warning("event group round failed", error=str(error))
        await asyncio.sleep(interval)


async def export_database_gauges(ctx: PipelineContext, queue: ArqQueue) -> None:
    """Hold the gauges lock on one connection and refresh the gauges while holding it.

    One process at a time computes them: whichever holds the advisory lock; the others
    stop exporting them.
    """
    while True:
        try:
            async with ctx.pool.acquire() as conn:
                while not await gauges.try_lock(conn, GAUGES_LOCK_KEY):
                    DATABASE_GAUGES.release()
                    await asyncio.sleep(GAUGES_INTERVAL_SECONDS)
                try:
                    while True:
                        figures = await gauges.read_figures(conn)
                        DATABASE_GAUGES.refresh(
                            live_by_status=figures.live_by_status,
                            oldest_live_seconds=figures.oldest_live_seconds,
                            requests_pending=figures.queued_requests,
                            outbox_unprocessed=figures.outbox_unprocessed,
                            queue_depth={queue.queue_name: await queue.depth()},
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
