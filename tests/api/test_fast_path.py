"""What the API's fast path relies on: its pool leaves no session state, its enqueue is Arq's."""

from __future__ import annotations

import uuid

import asyncpg
from arq.connections import ArqRedis
from arq.jobs import Job, JobStatus

from chainworker.api.app import create_api_pool
from chainworker.api.routes.operations import allowed_states
from chainworker.config import load_settings
from chainworker.db import api_requests
from chainworker.db.api_requests import ApiRequest
from chainworker.db.pool import tenant_transaction
from chainworker.jobs.enqueue import enqueue_jobs
from chainworker.lifecycle.model import TxOp
from tests.api.conftest import RunningApi, new_tenant
from tests.conftest import own_queue_name

_SETTINGS = (
    "SELECT current_setting('app.current_tenant_id', true) AS tenant,"
    " current_setting('app.status_change_source', true) AS source"
)


async def test_a_released_connection_carries_no_tenant_context(
    running_api: RunningApi, pool: asyncpg.Pool, admin: asyncpg.Connection) -> None:
    tenant = await new_tenant(pool, admin)
    settings = load_settings(db_pool_min_size=1, db_pool_max_size=1)
    api_pool = await create_api_pool(running_api.db.app_dsn, settings)
    try:
        async with tenant_transaction(api_pool, tenant.id, source="api") as conn:
            assert (await conn.fetchrow(_SETTINGS))["tenant"] == str(tenant.id)
        async with api_pool.acquire() as conn:  # the same connection: the pool has one
            assert not (await conn.fetchrow(_SETTINGS))["tenant"]
            done = await api_requests.record_api_request(
                conn,
                ApiRequest(
                    tenant_id=tenant.id,
                    key=uuid.uuid4().hex,
                    route="POST /v1/tickets/{ticket_id}/mint",
                    request_hash="0" * 64,
                    locked_by="test",
                    lock_seconds=30,
                    ttl_seconds=60,
                    operation="mint",
                    ticket_id=tenant.seeded.ticket_ids[0],
                    transfer_id=None,
                    reason=None,
                    allowed=allowed_states("mint", None),
                    status_url_prefix="/v1/requests/",
                ),
            )
            assert done.outcome == "recorded" and done.created
            # The statement was its own transaction: its context ended with it.
            after = await conn.fetchrow(_SETTINGS)
            assert not after["tenant"] and not after["source"]
    finally:
        await api_pool.close()


async def test_enqueue_writes_jobs_arq_reads_once_each(arq: ArqRedis) -> None:
    queue = own_queue_name("enqueue")
    tenant_id = uuid.uuid4()
    first, second, third = (uuid.uuid4() for _ in range(3))

    assert await enqueue_jobs(arq, queue, [(first, tenant_id, TxOp.MINT)]) == 1
    assert await enqueue_jobs(arq, queue, [(first, tenant_id, TxOp.MINT)]) == 0
    batch = [
        (first, tenant_id, TxOp.MINT), (second, tenant_id, TxOp.BURN),
        (third, tenant_id, TxOp.MINT),
    ]
    assert await enqueue_jobs(arq, queue, batch) == 2

    job = Job(str(second), arq, _queue_name=queue, _deserializer=arq.job_deserializer)
    assert await job.status() == JobStatus.queued
    info = await job.info()
    assert info is not None
    assert info.function == "burn_ticket" and info.args == (str(second), str(tenant_id))
    assert await arq.zcard(queue) == 3
