"""The job functions: decide and record in one transaction, commit, then send.

Every job is safe to run twice: a request that is no longer queued is left alone,
and the database refuses a second live transaction for a ticket. Jobs first try the
group commit (`group.py`) and fall back to their own transaction.
"""

from __future__ import annotations

import time
from typing import Any
from uuid import UUID

import asyncpg
from arq import Retry

from chainworker.chain.errors import ChainError
from chainworker.db import requests
from chainworker.db.pool import tenant_transaction
from chainworker.jobs import outcomes
from chainworker.jobs.context import WorkerContext
from chainworker.jobs.group import RUN_ALONE, Job, Outcome, RunAlone, SubmitGroup
from chainworker.jobs.prepare import Prepared, Refused, prepare_attempt, screen
from chainworker.obs import logs, metrics

log = logs.get_logger(__name__)

# Another operation is live on the ticket, or an earlier one waits: try again after it settles.
BUSY_DEFER_SECONDS = 2.0
# The chain or database did not answer: try again soon.
TRANSIENT_DEFER_SECONDS = 1.0


def _parse_ids(request_id: object, tenant_id: object) -> tuple[UUID, UUID] | None:
    try:
        return UUID(str(request_id)), UUID(str(tenant_id))
    except ValueError:
        return None


async def mint_ticket(ctx: dict[str, Any], request_id: str, tenant_id: str) -> str:
    return await run_request(ctx, "mint", request_id, tenant_id)


async def transfer_ticket(ctx: dict[str, Any], request_id: str, tenant_id: str) -> str:
    return await run_request(ctx, "transfer", request_id, tenant_id)


async def burn_ticket(ctx: dict[str, Any], request_id: str, tenant_id: str) -> str:
    return await run_request(ctx, "burn", request_id, tenant_id)


async def run_request(ctx: dict[str, Any], op: str, request_id: object, tenant_id: object) -> str:
    """Carry out one recorded request. Returns a short word on what happened."""
    worker: WorkerContext = ctx["worker"]
    ids = _parse_ids(request_id, tenant_id)
    if ids is None:
        log.warning("job payload rejected", op=op, job_id=ctx.get("job_id"))
        return "rejected: request_id and tenant_id must be UUIDs"
    rid, tid = ids
    started = time.perf_counter()
    with logs.log_context(tenant_id=tid, request_id=rid, job_id=ctx.get("job_id")):
        try:
            return await _run(worker, ctx.get("submits"), op, rid, tid, ctx.get("job_id"))
        except (ChainError, OSError, asyncpg.PostgresConnectionError) as error:
            log.warning("job deferred", op=op, error=str(error))
            raise Retry(defer=TRANSIENT_DEFER_SECONDS) from error
        finally:
            metrics.JOB_SECONDS.labels(job=f"{op}_ticket").observe(time.perf_counter() - started)


async def _run(
    worker: WorkerContext, group: SubmitGroup | None, op: str, rid: UUID, tid: UUID,
    job_id: str | None,
) -> str:
    outcome: Outcome = RUN_ALONE
    if group is not None:
        outcome = await group.submit(Job(op, rid, tid, job_id))
    if isinstance(outcome, RunAlone):
        outcome = await _run_alone(worker, op, rid, tid, job_id)
    if isinstance(outcome, str):
        return outcome
    await send(worker, outcome.raw, outcome.signature)
    metrics.TX_SUBMITTED.labels(op=op).inc()
    return f"submitted {outcome.signature}"


async def _run_alone(
    worker: WorkerContext, op: str, rid: UUID, tid: UUID, job_id: str | None
) -> Prepared | str:
    """The single-request path: one transaction for this request alone."""
    async with tenant_transaction(worker.pool, tid, reason=f"{op} submitted") as conn:
        request = await requests.get_request(conn, rid, lock=True)
        word = screen(request, op)
        if word is not None or request is None:
            return word or "unknown request"
        if await requests.earlier_live(conn, [request]):
            # The ticket's operations run in acceptance order: this one waits its turn.
            raise Retry(defer=BUSY_DEFER_SECONDS)
        try:
            # Refused is raised before prepare_attempt writes anything: no savepoint needed.
            prepared = await prepare_attempt(
                worker, conn, request, attempt=request.attempts + 1, parent_tx_id=None,
                job_id=job_id,
            )
        except Refused as refusal:
            await outcomes.refuse(conn, request, refusal.code, refusal.message)
            log.info("request refused", op=op, code=refusal.code, reason=refusal.message)
            return f"refused: {refusal.code}"
        except asyncpg.UniqueViolationError:
            # Another operation holds the ticket's one live transaction.
            raise Retry(defer=BUSY_DEFER_SECONDS) from None
        await requests.mark_submitted(conn, [(rid, prepared.signature, request.attempts + 1)])
    return prepared


async def send(worker: WorkerContext, raw: bytes, signature: str) -> None:
    """Send recorded bytes; a failure is left to the rebroadcast, never lost."""
    try:
        await worker.sender.send(raw)
    except ChainError as error:
        log.warning("send failed; the confirmation loop will rebroadcast", signature=signature,
                    error=str(error))
