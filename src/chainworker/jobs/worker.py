"""The Arq worker: the job functions, and the loops that run beside them.

One process runs:
- the jobs `mint_ticket`, `transfer_ticket`, `burn_ticket`, `verify_ticket` (decide,
  record, send);
- the confirmation loop (claims live transactions under a lease, reads their status);
- the sweeper (re-enqueues recorded requests whose job was lost);
- the database gauges, exported only by the process holding an advisory lock;
- the fee payers' top-ups, when a fee-payer pool is configured;
- the settlement of event groups' creations.
Any number of such processes share one Redis and one Postgres.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from arq.connections import RedisSettings
from arq.worker import Worker, func

from chainworker.chain import funding
from chainworker.chain.errors import ChainError
from chainworker.config import Settings
from chainworker.jobs import codec, exporter, functions, loops
from chainworker.jobs.batch_start import BatchStartWorker
from chainworker.jobs.queue import ArqQueue
from chainworker.obs import logs
from chainworker.pipeline import top_up
from chainworker.pipeline.context import PipelineContext, open_context
from chainworker.pipeline.record import SubmitGroup

JOB_MAX_TRIES = 20
STARTUP_ATTEMPTS = 8
# How long a starting worker waits for its fee payers' first top-ups to confirm.
STARTUP_FUNDING_SECONDS = 20.0
# What the development authority asks for when it runs low (faucets cap devnet's).
DEV_AIRDROP_LAMPORTS = {"localnet": 1_000 * 10**9, "devnet": 2 * 10**9, "testnet": 2 * 10**9}

log = logs.get_logger(__name__)


def _background(ctx: dict[str, Any], name: str, coroutine: Any) -> None:
    ctx.setdefault("tasks", {})[name] = asyncio.create_task(coroutine, name=name)


async def fund_authority(ctx: PipelineContext) -> None:
    """Top up the authority where the cluster allows; ride out a flaky endpoint at start."""
    for attempt in range(STARTUP_ATTEMPTS):
        try:
            await funding.ensure_funded(
                ctx.rpc,
                ctx.keys.authority.pubkey(),
                cluster=ctx.settings.solana_cluster,
                min_lamports=ctx.settings.authority_min_lamports,
                airdrop_lamports=DEV_AIRDROP_LAMPORTS.get(ctx.settings.solana_cluster, 0),
            )
            return
        except ChainError as error:
            if not error.retryable or attempt == STARTUP_ATTEMPTS - 1:
                raise
            log.warning("funding check failed; retrying", error=str(error))
            await asyncio.sleep(min(5.0, 0.5 * 2**attempt))


def make_worker(settings: Settings, app_dsn: str, redis_url: str, *, burst: bool = False) -> Worker:
    exporter.initialize_series()

    async def startup(ctx: dict[str, Any]) -> None:
        pipeline = await open_context(settings, app_dsn)
        # An endpoint of another cluster stops the worker here (ChainError, one line);
        # one that cannot be reached now is checked before its first use.
        for problem in await pipeline.rpc.verify_endpoints():
            log.warning("RPC endpoint not checked yet", error=str(problem))
        await fund_authority(pipeline)
        if pipeline.payers.payers:
            # Before the first job: until a payer's balance is known, the authority pays.
            try:
                await top_up.fund_pool(pipeline, within=STARTUP_FUNDING_SECONDS)
            except Exception as error:  # the loop tries again; meanwhile the authority pays
                log.warning("first fee payer top-up round failed", error=str(error))
        queue = ArqQueue(ctx["redis"], settings.queue_name)
        ctx["pipeline"] = pipeline
        ctx["submits"] = SubmitGroup(pipeline)
        _background(ctx, "confirm", loops.confirm_forever(pipeline, queue))
        _background(ctx, "sweeper", loops.sweep_forever(pipeline, queue))
        _background(ctx, "gauges", loops.export_database_gauges(pipeline, queue))
        _background(ctx, "relay", loops.relay_forever(pipeline, queue))
        _background(ctx, "top_up", loops.top_up_forever(pipeline))
        _background(ctx, "event_groups", loops.event_groups_forever(pipeline))
        log.info("worker started", worker_id=pipeline.worker_id,
                 authority=str(pipeline.payers.key_of(None)),
                 fee_payers=len(pipeline.payers.payers))

    async def shutdown(ctx: dict[str, Any]) -> None:
        for task in ctx.get("tasks", {}).values():
            task.cancel()
        for task in ctx.get("tasks", {}).values():
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        submits: SubmitGroup | None = ctx.get("submits")
        if submits is not None:
            await submits.close()
        pipeline: PipelineContext | None = ctx.get("pipeline")
        if pipeline is not None:
            await pipeline.close()

    return BatchStartWorker(
        functions=[
            *(
                func(job, name=codec.JOB_FOR_OPERATION[op], max_tries=JOB_MAX_TRIES)
                for op, job in functions.FOR_OPERATION.items()
            ),
            # Payloads that fail the job schema come here, never to the functions above.
            codec.dead_letter_function(settings.queue_name),
        ],
        queue_name=settings.queue_name,
        redis_settings=RedisSettings.from_dsn(redis_url),
        job_serializer=codec.serialize,
        job_deserializer=codec.deserialize,
        on_startup=startup,
        on_shutdown=shutdown,
        max_jobs=settings.worker_max_jobs,
        poll_delay=settings.worker_poll_delay_seconds,
        job_timeout=settings.job_timeout_seconds,
        # No stored results: a request id can be enqueued again once its job is done.
        keep_result=0,
        burst=burst,
        handle_signals=True,
        log_results=False,
    )
