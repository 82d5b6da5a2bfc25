"""Bulk requests: thousands of ids are recorded and queued in a few round trips."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest
from arq.connections import ArqRedis
from redis.asyncio.connection import Connection as RedisConnection

from chainworker.config import Settings
from chainworker.db import seed as seed_data
from chainworker.db.pool import create_pool
from chainworker.db.requests import NewRequest
from chainworker.jobs.enqueue import drop_queue, request_operation
from chainworker.lifecycle.model import TxOp
from tests.conftest import TestDatabase, own_queue_name

TICKETS = 3000


def count_round_trips(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """Count what this process writes to Redis and PostgreSQL (the servers are real)."""
    counts = {"redis": 0, "postgres": 0}
    send = RedisConnection.send_packed_command

    async def counted_send(self: RedisConnection, *args: Any, **kwargs: Any) -> None:
        counts["redis"] += 1
        await send(self, *args, **kwargs)

    connection: Any = asyncpg.connection.Connection  # private methods, untyped
    execute, simple = connection._execute, connection.execute

    async def counted_execute(self: Any, *args: Any, **kwargs: Any) -> Any:
        counts["postgres"] += 1
        return await execute(self, *args, **kwargs)

    async def counted_simple(self: Any, query: str, *args: Any, **kwargs: Any) -> Any:
        if not args:  # with arguments, execute() goes through _execute
            counts["postgres"] += 1
        return await simple(self, query, *args, **kwargs)

    monkeypatch.setattr(RedisConnection, "send_packed_command", counted_send)
    monkeypatch.setattr(connection, "_execute", counted_execute)
    monkeypatch.setattr(connection, "execute", counted_simple)
    return counts


async def test_thousands_of_ids_take_a_few_round_trips(
    fresh_db: TestDatabase, arq: ArqRedis, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    pool = await create_pool(fresh_db.app_dsn, settings)
    queue = own_queue_name("bulk")
    try:
        owner = await asyncpg.connect(fresh_db.admin_dsn)
        try:
            seeded = await seed_data.seed_tenant(owner, tickets=TICKETS)
        finally:
            await owner.close()
        async with pool.acquire() as conn:
            await conn.fetchval("SELECT 1")  # the connection is open before counting
        counts = count_round_trips(monkeypatch)
        recorded = await request_operation(
            pool, arq, queue, seeded.tenant_id, TxOp.MINT,
            [NewRequest(t, TxOp.MINT) for t in seeded.ticket_ids], source="cli",
        )
        monkeypatch.undo()
        assert len(recorded) == TICKETS and all(r.created for r in recorded)
        assert await arq.zcard(queue) == TICKETS
        # BEGIN, tenant context, one insert for all, COMMIT (and the pool's reset).
        assert counts["postgres"] <= 6, counts
        # Per 1,000 jobs: one pipeline, after redis-py checks (and at first loads) the script.
        assert counts["redis"] <= 3 * -(-TICKETS // 1000), counts
    finally:
        await drop_queue(arq, queue)
        await pool.close()
