"""The job functions Arq runs: `mint_ticket`, `transfer_ticket`, `burn_ticket`,
`metadata_update_ticket`, `verify_ticket`.

Each is a thin call into the pipeline: record the request's attempt (`pipeline.record`,
with the jobs that start at the same time), then send it. Every job is safe to run twice:
a request that is no longer queued is left alone, and the database refuses a second live
transaction for a ticket. What Arq needs to know comes back as Arq's own answers: a
deferral is `Retry`, and the job's result is a short word for the log.
"""

from __future__ import annotations

import time
from typing import Any
from uuid import UUID

from arq import Retry

from chainworker.jobs.codec import JOB_FOR_OPERATION
from chainworker.lifecycle.model import TxOp
from chainworker.obs import logs, metrics
from chainworker.pipeline.context import PipelineContext
from chainworker.pipeline.errors import is_transient
from chainworker.pipeline.record import (
    Deferred,
    Job,
    JobOutcome,
    SubmitGroup,
    Submitted,
    record_alone,
)
from chainworker.pipeline.send import send

# The chain or database did not answer: try again soon.
TRANSIENT_DEFER_SECONDS = 1.0

log = logs.get_logger(__name__)


async def mint_ticket(ctx: dict[str, Any], request_id: str, tenant_id: str) -> str:
    return await run_request(ctx, TxOp.MINT, request_id, tenant_id)


async def transfer_ticket(ctx: dict[str, Any], request_id: str, tenant_id: str) -> str:
    return await run_request(ctx, TxOp.TRANSFER, request_id, tenant_id)


async def burn_ticket(ctx: dict[str, Any], request_id: str, tenant_id: str) -> str:
    return await run_request(ctx, TxOp.BURN, request_id, tenant_id)


async def metadata_update_ticket(ctx: dict[str, Any], request_id: str, tenant_id: str) -> str:
    return await run_request(ctx, TxOp.METADATA_UPDATE, request_id, tenant_id)


async def verify_ticket(ctx: dict[str, Any], request_id: str, tenant_id: str) -> str:
    return await run_request(ctx, TxOp.VERIFY, request_id, tenant_id)


FOR_OPERATION = {
    TxOp.MINT: mint_ticket,
    TxOp.TRANSFER: transfer_ticket,
    TxOp.BURN: burn_ticket,
    TxOp.METADATA_UPDATE: metadata_update_ticket,
    TxOp.VERIFY: verify_ticket,
}


def _parse_ids(request_id: object, tenant_id: object) -> tuple[UUID, UUID] | None:
    try:
        return UUID(str(request_id)), UUID(str(tenant_id))
    except ValueError:
        return None


async def run_request(ctx: dict[str, Any], op: TxOp, request_id: object, tenant_id: object) -> str:
    """Carry out one recorded request. Returns a short word on what happened."""
    pipeline: PipelineContext = ctx["pipeline"]
    ids = _parse_ids(request_id, tenant_id)
    if ids is None:
        log.warning("job payload rejected", op=op, job_id=ctx.get("job_id"))
        return "rejected: request_id and tenant_id must be UUIDs"
    job = Job(op, ids[0], ids[1], ctx.get("job_id"))
    started = time.perf_counter()
    with logs.log_context(tenant_id=job.tenant_id, request_id=job.request_id, job_id=job.job_id):
        try:
            outcome = await _record(pipeline, ctx.get("submits"), job)
        except Exception as error:
            if not is_transient(error):
                raise  # the job fails; the sweeper queues its request again
            log.warning("job deferred", op=op, error=str(error))
            raise Retry(defer=TRANSIENT_DEFER_SECONDS) from error
        finally:
            seconds = time.perf_counter() - started
            metrics.JOB_SECONDS.labels(job=JOB_FOR_OPERATION[op]).observe(seconds)
        if isinstance(outcome, Deferred):
            raise Retry(defer=outcome.seconds)
        if isinstance(outcome, Submitted):
            await send(pipeline, outcome.prepared.raw, outcome.prepared.signature)
            metrics.TX_SUBMITTED.labels(op=op).inc()
        return str(outcome)


async def _record(pipeline: PipelineContext, group: SubmitGroup | None, job: Job) -> JobOutcome:
    """With the jobs that start at the same time, or alone: the same path."""
    if group is not None:
        return await group.submit(job)
    outcome = await record_alone(pipeline, job)
    if isinstance(outcome, BaseException):
        raise outcome
    return outcome
