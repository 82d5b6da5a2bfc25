"""The triggers fire only when their functions have something to do (migration 112).

For each trigger given a WHEN clause: it still fires, with its effect, when a column its
function reads changes; and it is not called at all for the worker's own updates that
leave those columns alone (a mint of a sold ticket). Calls are counted with
track_functions = 'all' in the test's transaction. The spend settlement lost its WHEN
clause in migration 118, when it became a statement trigger: it settles nothing for an
attempt seen at processed. And pending_transactions
leaves room on its pages, so a lease renewal is a HOT update.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from uuid import UUID

import asyncpg
from solders.signature import Signature

from chainworker.db import live_transactions, tickets, transactions
from chainworker.db import seed as seed_data
from chainworker.db.live_transactions import Observed
from chainworker.db.pool import set_context
from chainworker.db.transactions import NewAttempt
from chainworker.lifecycle.model import TxSnapshot, TxStatus

COST, RENT = 4_500_000, 4_000_000
REASON = "chain transaction confirmed"


@asynccontextmanager
async def counted(conn: asyncpg.Connection, tenant_id: UUID) -> AsyncIterator[asyncpg.Connection]:
    """A transaction of the runtime role in the tenant's context, counting function calls."""
    async with conn.transaction():
        await conn.execute("SET LOCAL track_functions = 'all'")  # the owner may; then act
        await conn.execute("SET LOCAL ROLE chainworker_app")  # as the runtime role
        await set_context(conn, tenant_id, reason=REASON, source="worker")
        yield conn


async def calls(conn: asyncpg.Connection, function: str) -> int:
    """Calls of `function` in this transaction so far."""
    found = await conn.fetchval("SELECT pg_stat_get_xact_function_calls($1::regproc)", function)
    return int(found or 0)


async def test_the_worker_mint_runs_only_the_ticket_triggers_it_needs(
    admin_conn: asyncpg.Connection,
) -> None:
    seeded = await seed_data.seed_tenant(admin_conn, tickets=2)
    kept, minted = seeded.ticket_ids
    async with counted(admin_conn, seeded.tenant_id) as conn:
        # Worker-owned columns only: the mint and wallet, the status kept as it is.
        await tickets.set_minted_many(conn, [(kept, "MintKept", "WalletKept", None)])
        assert await calls(conn, "ticket_status_change_trigger") == 0
        assert await calls(conn, "update_user_ticket_stats") == 0
        assert await calls(conn, "update_user_events_attended") == 0
        # The mint of a sold ticket: sold -> minted.
        await tickets.set_minted_many(conn, [(minted, "MintNew", "WalletNew", "minted")])
        assert await calls(conn, "ticket_status_change_trigger") == 1
        assert await calls(conn, "log_ticket_status_change") == 1
        assert await calls(conn, "update_user_ticket_stats") == 0  # not a sale
        assert await calls(conn, "update_user_events_attended") == 0  # not a check-in
    rows = {
        row["id"]: row for row in await admin_conn.fetch(
            "SELECT id, status, status_reason, status_changed_at, token_mint FROM tickets"
            " WHERE id = ANY($1::uuid[])", [kept, minted],
        )
    }
    # The status trigger's effect: the reason of the changing transaction, stamped.
    assert rows[minted]["status"] == "minted" and rows[minted]["status_reason"] == REASON
    assert rows[kept]["status"] == "sold" and rows[kept]["status_reason"] is None
    assert rows[kept]["token_mint"] == "MintKept"
    history = await admin_conn.fetch(
        "SELECT ticket_id, previous_status, new_status FROM ticket_state_history"
        " WHERE ticket_id = ANY($1::uuid[])", [kept, minted],
    )
    assert [tuple(row) for row in history] == [(minted, "sold", "minted")]


async def test_the_user_stats_triggers_still_count_sales_and_first_check_ins(
    admin_conn: asyncpg.Connection,
) -> None:
    seeded = await seed_data.seed_tenant(admin_conn, tickets=1)
    user = seeded.user_ids[0]
    query = "SELECT ticket_purchase_count, total_spent_cents, events_attended FROM users" \
            " WHERE id = $1"

    async def stats() -> tuple[int, int, int]:
        row = await admin_conn.fetchrow(query, user)
        assert row is not None
        return (row[0], row[1], row[2])

    new_ticket = """INSERT INTO tickets (tenant_id, event_id, user_id, price_cents, status)
                    VALUES ($1, $2, $3, 700, $4) RETURNING id"""
    async with admin_conn.transaction():  # the ticket service's own writes
        await admin_conn.execute("SET LOCAL track_functions = 'all'")
        await set_context(admin_conn, seeded.tenant_id, actor_type="system")
        before = await stats()
        available = await admin_conn.fetchval(
            new_ticket, seeded.tenant_id, seeded.event_id, user, "available"
        )
        assert await calls(admin_conn, "update_user_ticket_stats") == 0  # not a sale
        sold = await admin_conn.fetchval(
            new_ticket, seeded.tenant_id, seeded.event_id, user, "sold"
        )
        assert await calls(admin_conn, "update_user_ticket_stats") == 1  # inserted as sold
        await admin_conn.execute("UPDATE tickets SET status = 'sold' WHERE id = $1", available)
        assert await calls(admin_conn, "update_user_ticket_stats") == 2  # available -> sold
        after_sales = await stats()
        assert after_sales == (before[0] + 2, before[1] + 1400, before[2])
        await admin_conn.execute("UPDATE tickets SET status = 'minted' WHERE id = $1", sold)
        assert await calls(admin_conn, "update_user_events_attended") == 0
        await admin_conn.execute("UPDATE tickets SET status = 'checked_in' WHERE id = $1", sold)
        assert await calls(admin_conn, "update_user_events_attended") == 1
        await admin_conn.execute(
            "UPDATE tickets SET status = 'checked_in' WHERE id = $1", available
        )
        assert await calls(admin_conn, "update_user_events_attended") == 2  # fires; counts once
        assert await stats() == (*after_sales[:2], before[2] + 1)
        await admin_conn.execute("UPDATE tickets SET status = 'used' WHERE id = $1", sold)
        assert await calls(admin_conn, "update_user_events_attended") == 2  # not a check-in


def _attempt(seeded: seed_data.Seeded, ticket: UUID) -> NewAttempt:
    return NewAttempt(
        tenant_id=seeded.tenant_id, ticket_id=ticket, event_id=seeded.event_id,
        transfer_id=None, request_id=uuid.uuid4(), op="mint",
        signature=str(Signature(secrets.token_bytes(64))),
        blockhash="11111111111111111111111111111111", last_valid_block_height=1000,
        serialized_tx=b"\x01", attempt=1, parent_tx_id=None, job_id=None, max_retries=3,
        estimated_lamports=COST, estimated_rent=RENT, spend_reserved=COST,
    )


async def _spend_notes(conn: asyncpg.Connection) -> list[tuple[int, int]]:
    """The transaction's spend notes so far (release, charge), folded only at commit."""
    rows = await conn.fetch(
        "SELECT release, charge FROM chainworker_spend_unfolded ORDER BY release, charge"
    )
    return [(int(row["release"]), int(row["charge"])) for row in rows]


async def test_spend_settles_only_when_an_attempt_stops_being_live(
    admin_conn: asyncpg.Connection,
) -> None:
    """The settlement is a statement trigger since migration 118, so it runs for every
    update of the table; what it settles is what the row trigger of 112 settled."""
    seeded = await seed_data.seed_tenant(admin_conn, tickets=2)
    owner = "test-worker"
    confirmed, replaced = (_attempt(seeded, ticket) for ticket in seeded.ticket_ids)
    async with counted(admin_conn, seeded.tenant_id) as conn:
        await conn.fetchval("SELECT chainworker_spend_reserve($1::bigint[])", [COST, COST])
        ids = await transactions.record_attempts(conn, [confirmed, replaced])
        assert await live_transactions.take_leases(conn, owner, ids, 15) == set(ids)
        # Seen at processed: pending -> confirming, still live, nothing to settle.
        pending = TxSnapshot(TxStatus.PENDING, 1, 1000, None, None, False)
        seen = TxSnapshot(TxStatus.CONFIRMING, 1, 1000, None, None, False)
        await live_transactions.record_observations(
            conn, owner, [Observed(ids[0], pending, seen, slot=5)]
        )
        assert await conn.fetchval(
            "SELECT status FROM pending_transactions WHERE id = $1", ids[0]
        ) == "confirming"
        assert await _spend_notes(conn) == []
        assert await calls(conn, "chainworker_spend_count") == 0  # nothing charged
        # Confirmed: fee and rent charged, the reservation released.
        await live_transactions.confirm_many(conn, [(confirmed.signature, 6)])
        assert await _spend_notes(conn) == [(0, COST), (COST, 0)]
        # Replaced: nothing paid, the reservation released.
        await live_transactions.finish(conn, ids[1], TxStatus.REPLACED)
        assert await _spend_notes(conn) == [(0, COST), (COST, 0), (COST, 0)]
        # Each statement that settled charged once (the replacement's charge had no rows).
        assert await calls(conn, "chainworker_spend_count") == 2
    charged = await admin_conn.fetch(
        "SELECT reference_id, amount FROM spending_transactions WHERE tenant_id = $1",
        seeded.tenant_id,
    )
    assert [(row["reference_id"], int(row["amount"])) for row in charged] == [(ids[0], COST)]
    held = await admin_conn.fetchval(
        """SELECT sum(lamports) FILTER (WHERE side = 'reserved')
                  - sum(lamports) FILTER (WHERE side = 'released')
             FROM chainworker_spend_reservations WHERE tenant_id = $1""",
        seeded.tenant_id,
    )
    assert held == 0


async def test_a_lease_renewal_is_a_hot_update(admin_conn: asyncpg.Connection) -> None:
    options = await admin_conn.fetchval(
        "SELECT reloptions FROM pg_class WHERE oid = 'pending_transactions'::regclass"
    )
    assert "fillfactor=75" in (options or [])
    seeded = await seed_data.seed_tenant(admin_conn, tickets=12)
    # Rows the size of a signed mint, inserted as the first ones of the table, oldest first:
    # the first page is as full as inserts fill it.
    await admin_conn.execute(
        """INSERT INTO pending_transactions (tenant_id, ticket_id, tx_signature, tx_type,
                                             last_valid_block_height, serialized_tx,
                                             submitted_at)
           SELECT $1, t.id, 'sig-' || t.n, 'mint', 1000, convert_to(repeat('x', 1000), 'UTF8'),
                  now() - make_interval(secs => 100 - t.n)
             FROM unnest($2::uuid[]) WITH ORDINALITY AS t(id, n)""",
        seeded.tenant_id, seeded.ticket_ids,
    )
    first = await admin_conn.fetchval(
        "SELECT id FROM pending_transactions ORDER BY submitted_at LIMIT 1"
    )
    assert await admin_conn.fetchval(
        "SELECT (ctid::text::point)[0] FROM pending_transactions WHERE id = $1", first
    ) == 0
    pages = await admin_conn.fetchval(
        "SELECT count(DISTINCT (ctid::text::point)[0]) FROM pending_transactions"
    )
    assert pages > 1  # the first page is full, as far as inserts go
    async with admin_conn.transaction():
        await admin_conn.execute("SET LOCAL ROLE chainworker_app")
        claimed = await admin_conn.fetch(
            "SELECT id FROM chainworker_claim_live_transactions('test-worker', 1, 15)"
        )
        assert [row["id"] for row in claimed] == [first]  # its lease was taken: renewed
        counts = await admin_conn.fetchrow(
            """SELECT pg_stat_get_xact_tuples_updated(c) AS updated,
                      pg_stat_get_xact_tuples_hot_updated(c) AS hot
                 FROM CAST('pending_transactions' AS regclass) AS c"""
        )
    assert (counts["updated"], counts["hot"]) == (1, 1)
