"""Record requests in Postgres, then hand them to Arq: the only way work enters the queue.

Postgres is the truth: a request is committed before its job exists, and the job id
is the request id, so a job enqueued twice (by a caller and by the sweeper) runs once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from uuid import UUID

import asyncpg
from arq.connections import ArqRedis
from arq.constants import job_key_prefix
from redis.asyncio import Redis

from chainworker.db import requests
from chainworker.db.pool import tenant_transaction
from chainworker.db.requests import NewRequest, Operation, Recorded

JOB_FOR_OPERATION: dict[str, str] = {
    "mint": "mint_ticket",
    "transfer": "transfer_ticket",
    "burn": "burn_ticket",
}
# Enqueue calls in flight at once: enough to hide Redis latency, few enough for one pool.
_ENQUEUE_CONCURRENCY = 64


async def enqueue_jobs(
    arq: ArqRedis, queue_name: str, jobs: Sequence[tuple[UUID, UUID, str]]
) -> int:
    """Enqueue (request_id, tenant_id, operation) jobs; returns how many were new to the queue."""
    gate = asyncio.Semaphore(_ENQUEUE_CONCURRENCY)

    async def one(request_id: UUID, tenant_id: UUID, operation: str) -> bool:
        async with gate:
            job = await arq.enqueue_job(
                JOB_FOR_OPERATION[operation],
                str(request_id),
                str(tenant_id),
                _job_id=str(request_id),
                _queue_name=queue_name,
            )
            return job is not None

    results = await asyncio.gather(*(one(*job) for job in jobs))
    return sum(results)


async def request_operation(
    pool: asyncpg.Pool,
    arq: ArqRedis,
    queue_name: str,
    tenant_id: UUID,
    operation: Operation,
    items: Sequence[NewRequest],
    *,
    source: str,
) -> list[Recorded]:
    """Record requests (duplicates collapse onto the live one), commit, then enqueue them."""
    async with tenant_transaction(pool, tenant_id, reason=f"{operation} requested") as conn:
        recorded = await requests.record_requests(conn, tenant_id, operation, items, source)
    await enqueue_jobs(
        arq, queue_name, [(r.request_id, tenant_id, operation) for r in recorded if r.created]
    )
    return recorded


async def drop_queue(redis: Redis, queue_name: str) -> int:
    """Delete a queue and the jobs waiting in it (benchmarks and tests); how many jobs."""
    jobs = await redis.zrange(queue_name, 0, -1)
    await redis.delete(queue_name, *(job_key_prefix.encode() + job for job in jobs))
    return len(jobs)
