"""A round's confirmations in one statement (live_transactions.confirm_many, migration 118).

The batch does what the seed's confirm_transaction does, row for row: compared here with
a twin tenant confirmed through that function, one call per attempt. Its spend settles
once for the whole statement, and it never reaches another tenant's attempts.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from uuid import UUID

import asyncpg
from solders.signature import Signature

from chainworker.db import live_transactions, transactions
from chainworker.db import seed as seed_data
from chainworker.db.pool import set_context
from chainworker.db.transactions import NewAttempt

COST, RENT = 4_500_000, 4_000_000
REASON = "chain transaction confirmed"


@asynccontextmanager
async def as_worker(conn: asyncpg.Connection, tenant_id: UUID) -> AsyncIterator[asyncpg.Connection]:
    """A transaction of the runtime role (neither owner nor superuser) in a tenant's context,
    counting function calls."""
    async with conn.transaction():
        await conn.execute("SET LOCAL track_functions = 'all'")
        await conn.execute("SET LOCAL ROLE chainworker_app")
        await set_context(conn, tenant_id, reason=REASON, source="worker")
        yield conn


async def calls(conn: asyncpg.Connection, function: str) -> int:
    found = await conn.fetchval("SELECT pg_stat_get_xact_function_calls($1::regproc)", function)
    return int(found or 0)


def _attempt(seeded: seed_data.Seeded, ticket: UUID, transfer: UUID | None = None) -> NewAttempt:
    return NewAttempt(
        tenant_id=seeded.tenant_id, ticket_id=ticket, event_id=seeded.event_id,
        transfer_id=transfer, request_id=uuid.uuid4(), op="transfer" if transfer else "mint",
        signature=str(Signature(secrets.token_bytes(64))),
        blockhash="11111111111111111111111111111111", last_valid_block_height=1000,
        serialized_tx=b"\x01", attempt=1, parent_tx_id=None, job_id=None, max_retries=3,
        estimated_lamports=COST, estimated_rent=RENT, spend_reserved=COST,
    )


async def _world(admin: asyncpg.Connection) -> tuple[seed_data.Seeded, list[NewAttempt]]:
    """A tenant with four live attempts: pending, confirming, a transfer's, and one that
    fails before the confirmation comes."""
    seeded = await seed_data.seed_tenant(admin, tickets=4, users=5)
    receiver = seeded.user_ids[4]  # tickets go round the users: the fifth holds none
    [transfer] = await seed_data.accepted_transfers(
        admin, seeded.tenant_id, [seeded.ticket_ids[2]], receiver
    )
    attempts = [
        _attempt(seeded, seeded.ticket_ids[0]),
        _attempt(seeded, seeded.ticket_ids[1]),
        _attempt(seeded, seeded.ticket_ids[2], transfer),
        _attempt(seeded, seeded.ticket_ids[3]),
    ]
    async with as_worker(admin, seeded.tenant_id) as conn:
        await conn.fetchval("SELECT chainworker_spend_reserve($1::bigint[])", [COST] * 4)
        ids = await transactions.record_attempts(conn, attempts)
        await conn.execute(
            "UPDATE pending_transactions SET status = 'confirming' WHERE id = $1", ids[1]
        )
        assert await conn.fetchval(
            "SELECT fail_transaction($1, 'Custom(0)', 'already in use')", attempts[3].signature
        )
    return seeded, attempts


async def _outcome(admin: asyncpg.Connection, seeded: seed_data.Seeded) -> dict[str, Any]:
    """What the tenant's rows say, in ticket order, with its own ids left out."""
    order = {ticket: n for n, ticket in enumerate(seeded.ticket_ids)}
    attempts = await admin.fetch(
        """SELECT ticket_id, status, slot, block_time, error_code, error_message,
                  confirmed_at IS NOT NULL AS confirmed, tx_signature
             FROM pending_transactions WHERE tenant_id = $1""",
        seeded.tenant_id,
    )
    signature_of = {row["tx_signature"]: order[row["ticket_id"]] for row in attempts}
    log = await admin.fetch(
        """SELECT ticket_id, entity_type, operation, tx_signature, status, slot, details
             FROM blockchain_sync_log WHERE tenant_id = $1""",
        seeded.tenant_id,
    )
    transfers = await admin.fetch(
        "SELECT ticket_id, tx_signature, blockchain_confirmed FROM ticket_transfers"
        " WHERE tenant_id = $1",
        seeded.tenant_id,
    )
    charges = await admin.fetch(
        """SELECT p.ticket_id, s.amount, s.currency, s.reference_type
             FROM spending_transactions s JOIN pending_transactions p ON p.id = s.reference_id
            WHERE s.tenant_id = $1""",
        seeded.tenant_id,
    )
    held = await admin.fetchval(
        """SELECT sum(lamports) FILTER (WHERE side = 'reserved')
                  - sum(lamports) FILTER (WHERE side = 'released')
             FROM chainworker_spend_reservations WHERE tenant_id = $1""",
        seeded.tenant_id,
    )
    spent = await admin.fetch(
        "SELECT period, spent FROM chainworker_spend_totals WHERE tenant_id = $1",
        seeded.tenant_id,
    )
    return {
        "attempts": sorted(
            (order[r["ticket_id"]], r["status"], r["slot"], r["block_time"], r["error_code"],
             r["error_message"], r["confirmed"]) for r in attempts
        ),
        "log": sorted(
            (order[r["ticket_id"]], r["entity_type"], r["operation"],
             signature_of[r["tx_signature"]], r["status"], r["slot"], r["details"])
            for r in log
        ),
        "transfers": sorted(
            (order[r["ticket_id"]],
             None if r["tx_signature"] is None else signature_of[r["tx_signature"]],
             r["blockchain_confirmed"]) for r in transfers
        ),
        "charges": sorted(
            (order[r["ticket_id"]], int(r["amount"]), r["currency"], r["reference_type"])
            for r in charges
        ),
        "held": int(held),
        "spent": sorted((r["period"], int(r["spent"])) for r in spent),
    }


async def test_a_batch_confirms_what_the_seeds_function_confirms_row_for_row(
    admin_conn: asyncpg.Connection,
) -> None:
    batch, batch_attempts = await _world(admin_conn)
    seed, seed_attempts = await _world(admin_conn)
    unknown = str(Signature(secrets.token_bytes(64)))
    # Slots differ per attempt; the failed one and an unknown signature change nothing.
    landed = [(a.signature, 100 + n) for n, a in enumerate(batch_attempts)] + [(unknown, 1)]
    async with as_worker(admin_conn, batch.tenant_id) as conn:
        await live_transactions.confirm_many(conn, landed)
    async with as_worker(admin_conn, seed.tenant_id) as conn:
        for n, attempt in enumerate(seed_attempts):
            await conn.fetchval("SELECT confirm_transaction($1, $2)", attempt.signature, 100 + n)
        await conn.fetchval("SELECT confirm_transaction($1, 1)", unknown)

    done, expected = await _outcome(admin_conn, batch), await _outcome(admin_conn, seed)
    assert done == expected
    # And what both say is what a confirmation means.
    assert [row[1] for row in done["attempts"]] == ["confirmed"] * 3 + ["failed"]
    assert done["transfers"] == [(2, 2, True)]
    assert [(row[0], row[1]) for row in done["charges"]] == [
        (0, COST), (1, COST), (2, COST), (3, COST - RENT)
    ]
    assert done["held"] == 0


async def test_a_rounds_spend_settles_once_for_the_whole_statement(
    admin_conn: asyncpg.Connection,
) -> None:
    """Until migration 118 each confirmed attempt ran the settlement, a charge and its
    counter, one statement each: five attempts, five of everything."""
    seeded = await seed_data.seed_tenant(admin_conn, tickets=5)
    attempts = [_attempt(seeded, ticket) for ticket in seeded.ticket_ids]
    async with as_worker(admin_conn, seeded.tenant_id) as conn:
        await conn.fetchval("SELECT chainworker_spend_reserve($1::bigint[])", [COST] * 5)
        await transactions.record_attempts(conn, attempts)
    async with as_worker(admin_conn, seeded.tenant_id) as conn:
        await live_transactions.confirm_many(conn, [(a.signature, 7) for a in attempts])
        assert await calls(conn, "chainworker_spend_count") == 1
        assert await calls(conn, "chainworker_spend_settle_rows") == 1
        notes = await conn.fetch("SELECT release, charge FROM chainworker_spend_unfolded")
        assert sorted((int(r["release"]), int(r["charge"])) for r in notes) == [
            (0, 5 * COST), (5 * COST, 0)
        ]
    assert await admin_conn.fetchval(
        "SELECT count(*) FROM spending_transactions WHERE tenant_id = $1", seeded.tenant_id
    ) == 5
    assert await admin_conn.fetchval(
        "SELECT spent FROM chainworker_spend_totals WHERE tenant_id = $1 AND period = 'day'",
        seeded.tenant_id,
    ) == 5 * COST
    assert await admin_conn.fetchval(
        "SELECT count(*) FROM chainworker_spend_unfolded"
    ) == 0  # folded at commit


async def test_a_batch_never_confirms_another_tenants_attempt(
    admin_conn: asyncpg.Connection,
) -> None:
    victim = await seed_data.seed_tenant(admin_conn, tickets=1)
    attacker = await seed_data.seed_tenant(admin_conn, tickets=1)
    theirs = _attempt(victim, victim.ticket_ids[0])
    async with as_worker(admin_conn, victim.tenant_id) as conn:
        await conn.fetchval("SELECT chainworker_spend_reserve($1::bigint[])", [COST])
        await transactions.record_attempts(conn, [theirs])
    async with as_worker(admin_conn, attacker.tenant_id) as conn:
        await live_transactions.confirm_many(conn, [(theirs.signature, 9)])
    row = await admin_conn.fetchrow(
        "SELECT status, slot FROM pending_transactions WHERE tx_signature = $1", theirs.signature
    )
    assert (row["status"], row["slot"]) == ("pending", None)
    assert await admin_conn.fetchval("SELECT count(*) FROM blockchain_sync_log") == 0
    assert await admin_conn.fetchval("SELECT count(*) FROM spending_transactions") == 0
