"""Record the requests of jobs: decided and recorded together, one transaction per group.

Jobs hand their request to one flush at a time (`SubmitGroup`): those that start while a
flush runs, or within a few milliseconds of each other, make up the next. A flush opens
one transaction per tenant and operation, in which `prepare.prepare_attempts` locks,
checks, signs and records every request of the group in a handful of statements. A job
that runs without a group is a group of one: the same code path.

Each job gets a typed outcome: `Submitted` (send the bytes), `Declined` (refused, and
recorded so), `Skipped` (nothing to carry out) or `Deferred` (try again later). When a
group fails for a reason of its own (a lock it waited too long for, a ticket another
process made busy meanwhile, any other database error), each of its requests is tried
again as a group of one, so one request's trouble never holds up the others.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from uuid import UUID

from chainworker.coalesce import Coalescer
from chainworker.db import requests
from chainworker.db.errors import TicketBusy, is_contention
from chainworker.db.pool import tenant_transaction
from chainworker.db.requests import RequestRow
from chainworker.lifecycle.model import RequestStatus, TxOp
from chainworker.lifecycle.ticket_rules import Refusal
from chainworker.obs import logs, metrics
from chainworker.pipeline import outcomes
from chainworker.pipeline.context import PipelineContext
from chainworker.pipeline.errors import is_transient
from chainworker.pipeline.prepare import AttemptOf, Busy, Prepared, prepare_attempts

MAX_GROUP = 64
LINGER_SECONDS = 0.005
# One flush at a time: the jobs that start while it runs make up the next group, so
# groups grow with the load (measured: two at a time gave smaller groups, fewer mints/s).
FLUSHES_IN_FLIGHT = 1
# So one flush never holds up the others for long: a group that would wait longer than
# this for a row lock (a ticket held by another transaction) is split, and each of its
# requests waits alone.
GROUP_LOCK_TIMEOUT_MS = 1000
# Another operation is live on the ticket, or an earlier one waits: try again after it settles.
BUSY_DEFER_SECONDS = 2.0

log = logs.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Job:
    op: TxOp
    request_id: UUID
    tenant_id: UUID
    job_id: str | None


@dataclass(frozen=True, slots=True)
class Submitted:
    """Recorded: the bytes are to be sent."""

    prepared: Prepared

    def __str__(self) -> str:
        return f"submitted {self.prepared.signature}"


@dataclass(frozen=True, slots=True)
class Declined:
    """Refused, and recorded so: the ticket stays as it is."""

    refusal: Refusal

    def __str__(self) -> str:
        return f"refused: {self.refusal.code}"


@dataclass(frozen=True, slots=True)
class Skipped:
    """Nothing to carry out: an unknown request, another operation's, or not queued."""

    why: str

    def __str__(self) -> str:
        return self.why


@dataclass(frozen=True, slots=True)
class Deferred:
    """Not yet: the ticket is busy, or an earlier request of it waits."""

    seconds: float

    def __str__(self) -> str:
        return f"deferred {self.seconds:g}s"


JobOutcome = Submitted | Declined | Skipped | Deferred


def screen(request: RequestRow | None, op: TxOp) -> Skipped | None:
    """Why a job for `op` has nothing to carry out on this request; None when it has."""
    if request is None:
        return Skipped("unknown request")  # another tenant's id, or never recorded
    if request.operation != op:
        return Skipped(f"rejected: request is a {request.operation}, not a {op}")
    if request.status is not RequestStatus.QUEUED:
        return Skipped(f"nothing to do: request is {request.status}")
    return None


class _HandBack:
    """A job a flush gives back: it runs as a group of one, after the flush, so one request
    waiting for a lock never holds up the flushes behind it."""


_HAND_BACK = _HandBack()


class SubmitGroup:
    """Concurrent jobs' requests, recorded together."""

    def __init__(
        self, ctx: PipelineContext, *, max_group: int = MAX_GROUP,
        linger_seconds: float = LINGER_SECONDS,
    ) -> None:
        self._ctx = ctx

        async def flush(jobs: list[Job]) -> list[JobOutcome | _HandBack | BaseException]:
            return await _flush(ctx, jobs)

        self._jobs: Coalescer[Job, JobOutcome | _HandBack] = Coalescer(
            flush, max_batch=max_group, linger_seconds=linger_seconds, name="submit-group",
            max_in_flight=FLUSHES_IN_FLIGHT,
        )

    async def submit(self, job: Job) -> JobOutcome:
        flushed = await self._jobs.submit(job)
        if not isinstance(flushed, _HandBack):
            return flushed
        alone = await record_alone(self._ctx, job)  # in this job, not in the flush
        if isinstance(alone, BaseException):
            raise alone
        return alone

    async def close(self) -> None:
        await self._jobs.close(ConnectionError("the worker is stopping"))


async def record_jobs(
    ctx: PipelineContext, jobs: Sequence[Job]
) -> list[JobOutcome | BaseException]:
    """One transaction per (tenant, operation); each job's outcome, in `jobs` order.

    An exception in the list is the job's: transient (defer and retry) or not (the job
    fails; the sweeper queues its request again). What the flush hands back runs as
    groups of one: first deliveries together, then second deliveries of a request, which
    then find it as the first left it.
    """
    outcomes = await _flush(ctx, jobs)
    seen: set[UUID] = set()
    firsts: list[int] = []
    repeats: list[int] = []
    for index, job in enumerate(jobs):
        if isinstance(outcomes[index], _HandBack):
            (repeats if job.request_id in seen else firsts).append(index)
        seen.add(job.request_id)
    for wave in (firsts, repeats):
        alone = await asyncio.gather(*(record_alone(ctx, jobs[i]) for i in wave))
        for index, ran in zip(wave, alone, strict=True):
            outcomes[index] = ran
    done: list[JobOutcome | BaseException] = []
    for outcome in outcomes:
        assert not isinstance(outcome, _HandBack)  # every one handed back ran alone
        done.append(outcome)
    return done


async def record_alone(ctx: PipelineContext, job: Job) -> JobOutcome | BaseException:
    """One job's request as a group of one (it waits for its locks as long as it takes)."""
    outcome = (await _record_or_hand_back(ctx, [job]))[job.request_id]
    assert not isinstance(outcome, _HandBack)  # a group of one is never split
    return outcome


async def _flush(
    ctx: PipelineContext, jobs: Sequence[Job]
) -> list[JobOutcome | _HandBack | BaseException]:
    """A transaction per (tenant, operation) for the first delivery of each request; a
    second delivery, and the requests of a group split by contention, are handed back."""
    first: dict[UUID, Job] = {}
    for job in jobs:
        first.setdefault(job.request_id, job)
    groups: dict[tuple[UUID, TxOp], list[Job]] = defaultdict(list)
    for job in first.values():
        groups[(job.tenant_id, job.op)].append(job)
    found: dict[UUID, JobOutcome | _HandBack | BaseException] = {}

    async def one(members: list[Job]) -> None:
        found.update(await _record_or_hand_back(ctx, members))

    await asyncio.gather(*(one(members) for members in groups.values()))
    return [found[job.request_id] if first[job.request_id] is job else _HAND_BACK for job in jobs]


async def _record_or_hand_back(
    ctx: PipelineContext, jobs: list[Job]
) -> dict[UUID, JobOutcome | _HandBack | BaseException]:
    try:
        return dict(await record_group(ctx, jobs))
    except Exception as error:
        if len(jobs) == 1:
            if isinstance(error, TicketBusy):
                return {jobs[0].request_id: Deferred(BUSY_DEFER_SECONDS)}
            return {jobs[0].request_id: error}
        if is_transient(error) and not is_contention(error):
            return {job.request_id: error for job in jobs}  # what defers one defers all
        log.info("group commit split into single requests", count=len(jobs),
                 error=f"{type(error).__name__}: {error}")
        return dict.fromkeys((job.request_id for job in jobs), _HAND_BACK)


async def record_group(
    ctx: PipelineContext, jobs: list[Job]
) -> dict[UUID, JobOutcome | BaseException]:
    """The jobs of one tenant and operation, in one transaction; outcomes by request id."""
    tenant_id, op = jobs[0].tenant_id, jobs[0].op
    job_ids = {job.request_id: job.job_id for job in jobs}
    out: dict[UUID, JobOutcome | BaseException] = {}
    # A group waits for a lock only so long; a request alone waits as long as it takes.
    lock_timeout = GROUP_LOCK_TIMEOUT_MS if len(jobs) > 1 else None
    async with tenant_transaction(
        ctx.pool, tenant_id, reason=f"{op} submitted", lock_timeout_ms=lock_timeout
    ) as conn:
        rows = await requests.get_requests(conn, sorted(job_ids))
        ready: list[RequestRow] = []
        for request_id in job_ids:
            request = rows.get(request_id)
            skipped = screen(request, op)
            if skipped is not None:
                out[request_id] = skipped
            elif request is not None:
                ready.append(request)
        prepared = await prepare_attempts(ctx, conn, ready, {
            r.id: AttemptOf(r.attempts + 1, job_id=job_ids[r.id]) for r in ready
        })
        submitted = 0
        for request in ready:
            result = prepared[request.id]
            if isinstance(result, Prepared):
                out[request.id] = Submitted(result)
                submitted += 1
            elif isinstance(result, Busy):
                out[request.id] = Deferred(BUSY_DEFER_SECONDS)
            else:
                await outcomes.refuse(conn, request, result.code, result.message)
                log.info("request refused", op=op, request_id=str(request.id),
                         code=result.code, reason=result.message)
                out[request.id] = Declined(result)
    if submitted:
        metrics.SUBMIT_GROUP_SIZE.observe(submitted)
    return out

