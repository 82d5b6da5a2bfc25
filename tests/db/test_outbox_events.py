"""Outbox events an outcome writes: a batch in one statement, in the order given."""

from __future__ import annotations

import asyncpg

from chainworker.db import audit
from chainworker.db import seed as seed_data
from chainworker.db.pool import set_context


async def test_a_batch_of_events_is_written_in_the_order_given(
    admin_conn: asyncpg.Connection,
) -> None:
    seeded = await seed_data.seed_tenant(admin_conn, tickets=3)
    events = [
        audit.Event("ticket", ticket, "ticket.minted", {"n": n, "ticket_id": str(ticket)})
        for n, ticket in enumerate(reversed(seeded.ticket_ids))
    ]
    async with admin_conn.transaction():
        await admin_conn.execute("SET LOCAL ROLE chainworker_app")
        await set_context(admin_conn, seeded.tenant_id)
        await audit.emit_events(admin_conn, seeded.tenant_id, [])  # nothing to write
        await audit.emit_events(admin_conn, seeded.tenant_id, events)
        inserts = await admin_conn.fetchval(
            "SELECT pg_stat_get_xact_tuples_inserted('outbox'::regclass)"
        )
    assert inserts == len(events)
    rows = await admin_conn.fetch(
        "SELECT tenant_id, aggregate_type, aggregate_id, event_type, payload, processed_at"
        " FROM outbox WHERE tenant_id = $1 ORDER BY id",
        seeded.tenant_id,
    )
    assert [(r["aggregate_id"], r["event_type"]) for r in rows] == [
        (e.aggregate_id, e.event_type) for e in events
    ]
    assert [r["payload"] for r in rows] == [
        f'{{"n": {n}, "ticket_id": "{e.aggregate_id}"}}' for n, e in enumerate(events)
    ]
    assert {r["tenant_id"] for r in rows} == {seeded.tenant_id}
    assert all(r["processed_at"] is None for r in rows)
