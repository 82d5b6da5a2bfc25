"""`chainworker event update-metadata` recorded in batches: a run interrupted part way is
resumed by running it again, which records only what is missing; a second full run records
nothing; an update that failed is asked again; other events, tickets without an NFT and
burned ones are left out. (The updates landing on chain: tests/jobs/test_metadata_e2e.py.)"""

from __future__ import annotations

from collections.abc import AsyncIterator
from uuid import UUID

import asyncpg
import pytest
from arq.connections import ArqRedis, RedisSettings
from rich.progress import Progress, TaskID

from chainworker.db import requests as request_rows
from chainworker.db import seed as seed_data
from chainworker.db.pool import tenant_transaction
from chainworker.jobs.codec import create_arq_pool
from chainworker.jobs.enqueue import drop_queue
from chainworker.lifecycle.metadata import check_change
from chainworker.lifecycle.model import RequestStatus
from chainworker.ops.event_cli import Tally, change_key, update_event
from tests.conftest import TestDatabase, own_queue_name

MOVED = check_change({"uri": "https://moved.example/events/2.json"}, None)


class Interrupted(Exception):
    pass


class StopsAfter(Progress):
    """A progress bar that stops the run after `batches` batches (an operator's Ctrl-C)."""

    def __init__(self, batches: int) -> None:
        super().__init__(disable=True)
        self.left = batches

    def advance(self, task_id: TaskID, advance: float = 1) -> None:
        super().advance(task_id, advance)
        self.left -= 1
        if self.left == 0:
            raise Interrupted


@pytest.fixture
async def arq(redis_url: str) -> AsyncIterator[ArqRedis]:
    redis = await create_arq_pool(RedisSettings.from_dsn(redis_url))
    yield redis
    await redis.aclose()


@pytest.fixture
async def pool(fresh_db: TestDatabase) -> AsyncIterator[asyncpg.Pool]:
    the_pool = await asyncpg.create_pool(fresh_db.app_dsn, min_size=1, max_size=4)
    assert the_pool is not None
    yield the_pool
    await the_pool.close()


async def test_an_interrupted_run_resumes_and_a_second_run_records_nothing(
    pool: asyncpg.Pool, admin_conn: asyncpg.Connection, arq: ArqRedis
) -> None:
    seeded = await seed_data.seed_tenant(admin_conn, tickets=8)
    other = await seed_data.seed_tenant(admin_conn, tickets=1)
    updatable, (unminted, refunded) = seeded.ticket_ids[:6], seeded.ticket_ids[6:]
    await admin_conn.execute(
        "UPDATE tickets SET status = 'minted', token_mint = 'Mint' || id::text"
        " WHERE id = ANY($1::uuid[])", [*updatable, refunded, *other.ticket_ids],
    )
    await admin_conn.execute("UPDATE tickets SET status = 'refunded' WHERE id = $1", refunded)
    await admin_conn.execute(
        "UPDATE tickets SET status = 'checked_in' WHERE id = $1", updatable[0]
    )
    queue = own_queue_name("event")
    tenant, event = seeded.tenant_id, seeded.event_id

    async def run(progress: Progress | None = None, dry_run: bool = False) -> Tally:
        return await update_event(pool, arq, queue, tenant, event, MOVED, batch_size=2,
                                  dry_run=dry_run, progress=progress)

    async def recorded() -> dict[UUID, list[str]]:
        rows = await admin_conn.fetch(
            "SELECT ticket_id, status, request_key FROM chain_requests ORDER BY seq"
        )
        assert {row["request_key"] for row in rows} <= {change_key(event, MOVED)}
        out: dict[UUID, list[str]] = {}
        for row in rows:
            out.setdefault(row["ticket_id"], []).append(row["status"])
        return out

    try:
        dry = await run(dry_run=True)
        assert (dry.tickets, dry.recorded, dry.found) == (6, 6, 0)
        assert await recorded() == {}
        with pytest.raises(Interrupted):
            await run(StopsAfter(batches=2))
        assert len(await recorded()) == 4  # two batches of two, committed
        resumed = await run()
        assert (resumed.tickets, resumed.recorded, resumed.found) == (6, 2, 4)
        assert await recorded() == {ticket: ["queued"] for ticket in updatable}
        again = await run()
        assert (again.tickets, again.recorded, again.found) == (6, 0, 6)
        # one settles as confirmed, one fails: only the failed one is asked again
        async with tenant_transaction(pool, tenant) as conn:
            requests = await request_rows.latest_for_ticket(conn, updatable[1], 1)
            await request_rows.settle(conn, requests[0].id, RequestStatus.FAILED, code="x")
            requests = await request_rows.latest_for_ticket(conn, updatable[2], 1)
            await request_rows.settle(conn, requests[0].id, RequestStatus.CONFIRMED)
        after_failure = await run()
        assert (after_failure.recorded, after_failure.found) == (1, 5)
        assert (await recorded())[updatable[1]] == ["failed", "queued"]
        assert unminted not in await recorded() and refunded not in await recorded()
        # a different change of the same event is a different ask
        other_change = check_change({"uri": "https://moved.example/events/3.json"}, None)
        assert change_key(event, other_change) != change_key(event, MOVED)
        assert change_key(other.event_id, MOVED) != change_key(event, MOVED)
        queued = {job.decode() for job in await arq.zrange(queue, 0, -1)}
        made = await admin_conn.fetch("SELECT id::text FROM chain_requests")
        assert queued == {row["id"] for row in made}  # each request queued once it was made
    finally:
        await drop_queue(arq, queue)
