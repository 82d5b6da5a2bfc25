"""The shared-database way in: requests recorded and their jobs queued, without HTTP."""

from __future__ import annotations

import asyncpg
from arq.connections import ArqRedis

from chainworker.config import Settings
from chainworker.db import seed as seed_data
from chainworker.db.pool import create_pool
from chainworker.db.requests import NewRequest
from chainworker.direct import request_direct
from chainworker.jobs.enqueue import drop_queue
from chainworker.lifecycle.model import TxOp
from tests.conftest import TestDatabase, own_queue_name


async def test_a_direct_request_is_recorded_once_and_queued(
    fresh_db: TestDatabase, admin_conn: asyncpg.Connection, arq: ArqRedis, settings: Settings
) -> None:
    seeded = await seed_data.seed_tenant(admin_conn, tickets=2)
    queue = own_queue_name("direct")
    pool = await create_pool(fresh_db.app_dsn, settings)
    try:
        items = [NewRequest(ticket, TxOp.MINT) for ticket in seeded.ticket_ids]
        first = await request_direct(pool, arq, queue, seeded.tenant_id, TxOp.MINT, items)
        again = await request_direct(pool, arq, queue, seeded.tenant_id, TxOp.MINT, items)
    finally:
        await pool.close()
        queued = await arq.zrange(queue, 0, -1)
        await drop_queue(arq, queue)
    assert [r.created for r in first] == [True, True]
    assert [(r.request_id, r.created) for r in again] == [(r.request_id, False) for r in first]
    assert {job.decode() for job in queued} == {str(r.request_id) for r in first}
    rows = await admin_conn.fetch(
        "SELECT source, status FROM chain_requests WHERE tenant_id = $1", seeded.tenant_id
    )
    assert [(row["source"], row["status"]) for row in rows] == [("client", "queued")] * 2


def test_the_http_client_needs_neither_a_database_driver_nor_a_queue() -> None:
    import subprocess
    import sys

    probe = (
        "import sys, chainworker.client\n"
        "held = [m for m in ('asyncpg', 'arq', 'redis', 'solders') if m in sys.modules]\n"
        "print(','.join(held))"
    )
    shown = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                           check=True).stdout.strip()
    assert shown == ""
