"""Record requests in Postgres, then hand them to Arq: the only way work enters the queue.

Postgres is the truth: a request is committed before its job exists, and the job id
is the request id, so a job enqueued twice (by a caller and by the sweeper) runs once.

Jobs are written by `jobs/arq_internals.py`'s enqueue script (what `ArqRedis.enqueue_job`
writes, one round trip per job, many per pipeline): this module knows no key or job
layout of Arq's, only `ArqRedis` (a Redis client) and that module.
"""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

import asyncpg
from arq.connections import ArqRedis
from redis.asyncio import Redis
from redis.exceptions import RedisError

from chainworker.db import requests
from chainworker.db.pool import tenant_transaction
from chainworker.db.requests import NewRequest, Recorded
from chainworker.jobs import arq_internals, codec
from chainworker.jobs.codec import JOB_FOR_OPERATION
from chainworker.lifecycle.model import TxOp
from chainworker.obs import logs

log = logs.get_logger(__name__)

# Jobs per pipeline when many are enqueued at once (the sweeper, the CLI, the relay).
_PIPELINE_CHUNK = 1000

async def enqueue_jobs(
    arq: ArqRedis, queue_name: str, jobs: Sequence[tuple[UUID, UUID, TxOp]]
) -> int:
    """Enqueue (request_id, tenant_id, operation) jobs; returns how many were new to the queue.

    The jobs are exactly what `ArqRedis.enqueue_job` writes (function, args, enqueue
    time, expiry) through the job codec, so an Arq worker using it runs them; the job
    id is the request id.
    """
    if not jobs:
        return 0
    # Arq enqueues one job per call and cannot batch; the script is its enqueue_job, atomic.
    script = arq_internals.register_enqueue(arq)
    if len(jobs) == 1:
        return int(await script(*_script_call(arq, queue_name, *jobs[0])))
    added = 0
    for start in range(0, len(jobs), _PIPELINE_CHUNK):
        pipe = arq.pipeline(transaction=False)
        for job in jobs[start : start + _PIPELINE_CHUNK]:
            await script(*_script_call(arq, queue_name, *job), client=pipe)
        added += sum(int(result) for result in await pipe.execute())
    return added


def _script_call(
    arq: ArqRedis, queue_name: str, request_id: UUID, tenant_id: UUID, operation: TxOp
) -> arq_internals.ScriptCall:
    """The enqueue script's keys and arguments for one job.

    The job is encoded by jobs/codec.py whatever the connection's serializer (tests read
    it back through arq.jobs.Job, and real Arq workers run it).
    """
    job_id = str(request_id)
    return arq_internals.enqueue_script_call(
        arq, queue_name, job_id, JOB_FOR_OPERATION[operation], (job_id, str(tenant_id)),
        serializer=codec.serialize,
    )


async def request_operation(
    pool: asyncpg.Pool,
    arq: ArqRedis,
    queue_name: str,
    tenant_id: UUID,
    operation: TxOp,
    items: Sequence[NewRequest],
    *,
    source: str,
) -> list[Recorded]:
    """Record requests (duplicates collapse onto the live one), commit, then enqueue them."""
    async with tenant_transaction(pool, tenant_id, reason=f"{operation} requested") as conn:
        recorded = await requests.record_requests(conn, tenant_id, operation, items, source)
    await enqueue_committed(
        arq, queue_name, [(r.request_id, tenant_id, operation) for r in recorded if r.created]
    )
    return recorded


async def enqueue_committed(
    arq: ArqRedis, queue_name: str, jobs: Sequence[tuple[UUID, UUID, TxOp]]
) -> None:
    """Enqueue the jobs of requests already committed; when Redis is away, log it.

    The requests are accepted either way: the sweeper queues a recorded request that has
    no job once its grace has passed. Raising would tell the caller its requests failed,
    and a caller that asks again would ask twice.
    """
    try:
        await enqueue_jobs(arq, queue_name, jobs)
    except (RedisError, OSError) as error:
        log.warning(
            "enqueue failed; the sweeper will queue it",
            error=repr(error),
            requests=len(jobs),
            request_id=str(jobs[0][0]) if jobs else None,
        )


async def drop_queue(redis: Redis, queue_name: str) -> int:
    """Delete a queue and the jobs waiting in it (benchmarks and tests); how many jobs."""
    jobs = await arq_internals.queued_job_ids(redis, queue_name)
    await redis.delete(queue_name, *arq_internals.job_keys(jobs))
    return len(jobs)
