"""Group commit: the requests of concurrent jobs, decided and recorded together.

Jobs hand their request to one flush at a time: those that start while a flush runs,
or within a few milliseconds of each other, make up the next. A flush opens one
transaction per tenant and operation: requests, tickets and
transfers are locked in id order, checked, signed and recorded in a handful of
statements instead of a handful per request. Whatever is out of the ordinary (a
refusal, a ticket with a live transaction, a spending limit it would pass, a database
error) goes back to its job, which runs alone on the single-request path: that path
owns every explanation and every retry.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from uuid import UUID

import asyncpg

from chainworker.chain.errors import ChainError
from chainworker.coalesce import Coalescer
from chainworker.db import audit, requests, tickets, transactions
from chainworker.db.pool import Connection, tenant_transaction
from chainworker.db.requests import RequestRow
from chainworker.jobs.context import WorkerContext
from chainworker.jobs.prepare import (
    Prepared,
    Refused,
    check_request,
    screen,
    sign_attempt,
    users_of,
    wallets_of,
)
from chainworker.obs import logs, metrics

MAX_GROUP = 64
LINGER_SECONDS = 0.005
# One flush at a time: the jobs that start while it runs make up the next group, so
# groups grow with the load (measured: two at a time gave smaller groups, fewer mints/s).
FLUSHES_IN_FLIGHT = 1
# So one flush never holds up the others for long: a group that would wait longer than
# this for a row lock (a ticket held by another transaction) goes back to its jobs,
# and each waits alone.
GROUP_LOCK_TIMEOUT_MS = 1000

log = logs.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Job:
    op: str
    request_id: UUID
    tenant_id: UUID
    job_id: str | None


class RunAlone:
    """The job must carry out its request on the single-request path."""


RUN_ALONE = RunAlone()

# Recorded and ready to send; or the job's last word (nothing to do); or run alone.
Outcome = Prepared | str | RunAlone


class SubmitGroup:
    def __init__(
        self, ctx: WorkerContext, *, max_group: int = MAX_GROUP,
        linger_seconds: float = LINGER_SECONDS,
    ) -> None:
        async def flush(jobs: list[Job]) -> list[Outcome | BaseException]:
            return await record_jobs(ctx, jobs)

        self._jobs: Coalescer[Job, Outcome] = Coalescer(
            flush, max_batch=max_group, linger_seconds=linger_seconds, name="submit-group",
            max_in_flight=FLUSHES_IN_FLIGHT,
        )

    async def submit(self, job: Job) -> Outcome:
        return await self._jobs.submit(job)

    async def close(self) -> None:
        await self._jobs.close(ConnectionError("the worker is stopping"))


async def record_jobs(ctx: WorkerContext, jobs: Sequence[Job]) -> list[Outcome | BaseException]:
    """One transaction per (tenant, operation); each job's outcome in `jobs` order."""
    groups: dict[tuple[UUID, str], list[Job]] = defaultdict(list)
    for job in jobs:
        groups[(job.tenant_id, job.op)].append(job)
    outcomes: dict[UUID, Outcome | BaseException] = {}

    async def one(tenant_id: UUID, op: str, members: list[Job]) -> None:
        try:
            found = await _record_group(ctx, tenant_id, op, members)
        except (ChainError, OSError, asyncpg.PostgresConnectionError) as error:
            # What would defer each job alone defers them all.
            found = {job.request_id: error for job in members}
        except asyncpg.PostgresError as error:
            log.info("group commit fell back to single requests", count=len(members),
                     error=str(error))
            found = {}
        outcomes.update(found)

    await asyncio.gather(*(one(tenant, op, members) for (tenant, op), members in groups.items()))
    seen: set[UUID] = set()
    results: list[Outcome | BaseException] = []
    for job in jobs:
        first = job.request_id not in seen
        seen.add(job.request_id)
        results.append(outcomes.get(job.request_id, RUN_ALONE) if first else RUN_ALONE)
    return results


async def _record_group(
    ctx: WorkerContext, tenant_id: UUID, op: str, jobs: list[Job]
) -> dict[UUID, Outcome | BaseException]:
    """Outcomes by request id; a job left out runs alone."""
    job_ids: dict[UUID, str | None] = {}
    for job in jobs:
        job_ids.setdefault(job.request_id, job.job_id)  # a second delivery runs alone
    out: dict[UUID, Outcome | BaseException] = {}
    async with tenant_transaction(
        ctx.pool, tenant_id, reason=f"{op} submitted", lock_timeout_ms=GROUP_LOCK_TIMEOUT_MS
    ) as conn:
        found = await requests.get_requests(conn, sorted(job_ids))
        ready: list[RequestRow] = []
        for request_id in job_ids:
            request = found.get(request_id)
            word = screen(request, op)
            if word is not None:
                out[request_id] = word
            elif request is not None:
                ready.append(request)
        if not ready:
            return out
        prepared = await _sign_and_record(ctx, conn, tenant_id, ready, job_ids)
        out.update(prepared)
    return out


async def _sign_and_record(
    ctx: WorkerContext,
    conn: Connection,
    tenant_id: UUID,
    ready: list[RequestRow],
    job_ids: dict[UUID, str | None],
) -> dict[UUID, Prepared]:
    """Lock, check, sign and record the requests that pass; the others are left out."""
    locked = await tickets.lock_tickets(conn, sorted({r.ticket_id for r in ready}))
    transfer_ids = sorted({r.transfer_id for r in ready if r.transfer_id is not None})
    transfers = await tickets.lock_transfers(conn, transfer_ids) if transfer_ids else {}
    busy = await transactions.tickets_with_live_attempt(conn, list(locked))
    waiting = await requests.earlier_live(conn, ready)
    checked = []
    for request in ready:
        if request.ticket_id in busy or request.id in waiting:
            continue  # alone, it waits for the live transaction or the earlier request
        transfer = transfers.get(request.transfer_id) if request.transfer_id else None
        try:
            ticket = check_request(request, locked.get(request.ticket_id), transfer)
        except Refused:
            continue  # alone, it records the refusal
        busy.add(ticket.id)
        checked.append((request, ticket, transfer))
    if not checked:
        return {}
    users = sorted({user for _, ticket, transfer in checked for user in users_of(ticket, transfer)})
    try:
        wallets = await wallets_of(ctx, conn, tenant_id, users)
    except Refused:
        return {}  # a bad registered wallet: alone, each finds out whether it is theirs
    blockhash, last_valid = await ctx.rpc.latest_blockhash()
    attempts = []
    for request, ticket, transfer in checked:
        try:
            attempts.append(await sign_attempt(
                ctx, request, ticket, transfer, wallets, blockhash, last_valid,
                attempt=request.attempts + 1, parent_tx_id=None, job_id=job_ids[request.id],
            ))
        except Refused:
            continue
    if attempts and await ctx.tenant_has_spend_limit(conn, tenant_id):
        # Weighed together, in order, with what is spent and in flight; those that fit are
        # reserved and recorded with their reservation. A refused one goes back to its job,
        # which weighs it alone and records the refusal with its reason.
        refusals = await audit.reserve_spend(conn, [a.estimated_lamports for a in attempts])
        attempts = [
            replace(a, spend_reserved=a.estimated_lamports)
            for a, refusal in zip(attempts, refusals, strict=True)
            if refusal is None
        ]
    if not attempts:
        return {}
    metrics.SUBMIT_GROUP_SIZE.observe(len(attempts))
    tx_ids = await transactions.record_attempts(conn, attempts)
    await requests.mark_submitted(
        conn, [(new.request_id, new.signature, new.attempt) for new in attempts]
    )
    return {
        new.request_id: Prepared(tx_id, new.signature, new.serialized_tx, new.estimated_lamports)
        for new, tx_id in zip(attempts, tx_ids, strict=True)
    }
