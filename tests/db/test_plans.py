"""The checks a submit group makes probe one ticket's rows, whatever the statistics say.

A new database, or a table in the first minute of a burst, has no statistics yet: the
planner then costs an equality through any index on the same leading column alike. Two
checks of every group read all of a tenant's live rows that way (a third of a worker's
database time at 600 mints/s): whether a ticket has a live attempt, through reconcile's
tenant index of live attempts, and whether an earlier request of the ticket is live,
through the tenant's request index; and so did the group's locks of its requests and
tickets by id, the group's marking of its requests submitted, and the confirmation round's
writing of what it observed (a join of every live attempt against every id). Each must
touch about one row per id.
"""

from __future__ import annotations

import asyncio
import re
import secrets
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from solders.signature import Signature

from chainworker.db import live_transactions, requests, tickets, transactions
from chainworker.db import seed as seed_data
from chainworker.lifecycle.model import RequestStatus, TxSnapshot, TxStatus

LIVE = 1500  # enough live rows that reading them all is unmistakable
ASKED = 50  # a group's size at load


async def _burst(admin: asyncpg.Connection) -> tuple[uuid.UUID, list[uuid.UUID]]:
    """One tenant with LIVE live attempts and LIVE queued requests, never analyzed."""
    for table in ("pending_transactions", "chain_requests", "tickets"):
        # autovacuum must not give the planner statistics in the middle of the test
        await admin.execute(f"ALTER TABLE {table} SET (autovacuum_enabled = false)")
    seeded = await seed_data.seed_tenant(admin, tickets=2 * LIVE, users=20)
    ticket_ids = seeded.ticket_ids
    submitted = datetime.now(UTC) - timedelta(seconds=5)
    await admin.copy_records_to_table(
        "pending_transactions",
        records=[
            (uuid.uuid4(), seeded.tenant_id, ticket, "mint", "pending",
             "11111111111111111111111111111111", 2**40,
             str(Signature(secrets.token_bytes(64))), 3, submitted, submitted)
            for ticket in ticket_ids[:LIVE]
        ],
        columns=["id", "tenant_id", "ticket_id", "tx_type", "status", "blockhash",
                 "last_valid_block_height", "tx_signature", "max_retries", "submitted_at",
                 "last_sent_at"],
    )
    await admin.copy_records_to_table(
        "chain_requests",
        records=[
            (uuid.uuid4(), seeded.tenant_id, ticket, "mint") for ticket in ticket_ids[LIVE:]
        ],
        columns=["id", "tenant_id", "ticket_id", "operation"],
    )
    return seeded.tenant_id, ticket_ids


async def _delivered(conn: asyncpg.Connection, plans: list[str]) -> list[str]:
    """`plans` with the plans of every statement run so far: a statement's plan is logged
    when its portal closes, at the next statement, and asyncpg hands log messages to the
    listener on a later turn of the loop."""
    await conn.execute("SELECT 1")
    for _ in range(3):
        await asyncio.sleep(0)
    return plans


_SCANNED = re.compile(r"Scan .*\(actual time=[\d.]+\.\.[\d.]+ rows=(\d+) loops=(\d+)\)")
_THROWN_AWAY = re.compile(r"Rows Removed by (?:Filter|Join Filter|Index Recheck): (\d+)")


def _rows_touched(plans: list[str], table: str) -> list[int]:
    """For each executed plan that reads `table`: the rows and index entries its scans
    produced (every loop) plus those they read and threw away."""
    touched = []
    for plan in plans:
        if f" on {table} " not in plan:
            continue
        scanned = sum(int(rows) * int(loops) for rows, loops in _SCANNED.findall(plan))
        touched.append(scanned + sum(int(n) for n in _THROWN_AWAY.findall(plan)))
    return touched


# Each asked id may touch its own row, its index entry and a joined row or two.
BOUND = 4 * ASKED


async def test_the_live_attempt_check_reads_one_row_per_ticket(
    admin_conn: asyncpg.Connection, explained: list[str]
) -> None:
    conn, plans = admin_conn, explained  # the owner, acting as the runtime role below
    tenant, ticket_ids = await _burst(conn)
    asked = ticket_ids[LIVE - ASKED // 2 : LIVE + ASKED // 2]  # half with a live attempt
    async with conn.transaction():
        await conn.execute("SET LOCAL ROLE chainworker_app")  # row-level security applies
        await conn.execute("SELECT set_tenant_context($1)", tenant)
        (await _delivered(conn, plans)).clear()
        busy = await transactions.tickets_with_live_attempt(conn, asked)
    assert busy == set(asked[: ASKED // 2])
    touched = _rows_touched(await _delivered(conn, plans), "pending_transactions")
    assert touched and max(touched) <= BOUND, (touched, plans)


async def test_the_earlier_request_check_reads_one_ticket_at_a_time(
    admin_conn: asyncpg.Connection, explained: list[str]
) -> None:
    conn, plans = admin_conn, explained  # the owner, acting as the runtime role below
    tenant, ticket_ids = await _burst(conn)
    later = await conn.fetch(  # a second, later request for some of the queued tickets
        """INSERT INTO chain_requests (tenant_id, ticket_id, operation, reason)
           SELECT $1, t, 'burn', 'revoke' FROM unnest($2::uuid[]) AS t RETURNING id""",
        tenant, ticket_ids[LIVE : LIVE + ASKED // 2],
    )
    async with conn.transaction():
        await conn.execute("SET LOCAL ROLE chainworker_app")  # row-level security applies
        await conn.execute("SELECT set_tenant_context($1)", tenant)
        firsts = await requests.get_requests(conn, [
            row["id"] for row in await conn.fetch(
                "SELECT id FROM chain_requests WHERE ticket_id = ANY($1::uuid[])"
                " AND operation = 'mint'",
                ticket_ids[LIVE + ASKED // 2 : LIVE + ASKED],
            )
        ])
        seconds = await requests.get_requests(conn, [row["id"] for row in later])
        (await _delivered(conn, plans)).clear()
        waiting = await requests.earlier_live(conn, [*firsts.values(), *seconds.values()])
    assert waiting == set(seconds)
    touched = _rows_touched(await _delivered(conn, plans), "chain_requests")
    assert touched and max(touched) <= BOUND, (touched, plans)


async def test_locking_by_id_touches_one_row_per_id_in_id_order(
    admin_conn: asyncpg.Connection, explained: list[str]
) -> None:
    """The group's locks of its requests and tickets: one primary-key probe per id."""
    conn, plans = admin_conn, explained
    tenant, ticket_ids = await _burst(conn)
    asked = ticket_ids[LIVE : LIVE + ASKED]
    request_ids = [
        row["id"] for row in await conn.fetch(
            "SELECT id FROM chain_requests WHERE ticket_id = ANY($1::uuid[])", asked
        )
    ]
    async with conn.transaction():
        await conn.execute("SET LOCAL ROLE chainworker_app")
        await conn.execute("SELECT set_tenant_context($1)", tenant)
        (await _delivered(conn, plans)).clear()
        found = await requests.get_requests(conn, list(reversed(request_ids)))
        locked = await tickets.lock_tickets(conn, [*reversed(asked), asked[0]])
    assert list(found) == sorted(request_ids) and list(locked) == sorted(asked)
    delivered = await _delivered(conn, plans)
    for table in ("chain_requests", "tickets"):
        touched = _rows_touched(delivered, table)
        assert touched and max(touched) <= BOUND, (table, touched, delivered)


OWNER = "plan-worker"  # the lease owner of the burst's first ASKED attempts


async def _leased_and_queued(
    conn: asyncpg.Connection, ticket_ids: list[uuid.UUID]
) -> tuple[list[uuid.UUID], list[uuid.UUID]]:
    """The burst's first ASKED live attempts, leased by OWNER, and ASKED queued requests."""
    attempts = [
        row["id"] for row in await conn.fetch(
            """UPDATE pending_transactions SET lease_owner = $2
                WHERE ticket_id = ANY($1::uuid[]) RETURNING id""",
            ticket_ids[:ASKED], OWNER,
        )
    ]
    queued = [
        row["id"] for row in await conn.fetch(
            "SELECT id FROM chain_requests WHERE ticket_id = ANY($1::uuid[])",
            ticket_ids[LIVE : LIVE + ASKED],
        )
    ]
    return attempts, queued


async def test_marking_submitted_and_observed_touches_one_row_per_id(
    admin_conn: asyncpg.Connection, explained: list[str]
) -> None:
    """The group's requests marked submitted, the round's observations written."""
    conn, plans = admin_conn, explained
    tenant, ticket_ids = await _burst(conn)
    attempts, queued = await _leased_and_queued(conn, ticket_ids)
    read = TxSnapshot(TxStatus.PENDING, 1, 2**40, None, None, False)
    after = TxSnapshot(TxStatus.CONFIRMING, 1, 2**40, None, None, False)
    async with conn.transaction():
        await conn.execute("SET LOCAL ROLE chainworker_app")
        await conn.execute("SELECT set_tenant_context($1)", tenant)
        (await _delivered(conn, plans)).clear()
        await requests.mark_submitted(conn, [(r, f"sig-{r}", 1) for r in queued])
        await live_transactions.record_observations(
            conn, OWNER, [live_transactions.Observed(a, read, after, slot=7) for a in attempts]
        )
    delivered = list(await _delivered(conn, plans))  # before the checks below add theirs
    assert await conn.fetchval(
        "SELECT count(*) FROM chain_requests WHERE id = ANY($1::uuid[]) AND status = 'submitted'",
        queued,
    ) == ASKED
    assert await conn.fetchval(
        """SELECT count(*) FROM pending_transactions
            WHERE id = ANY($1::uuid[]) AND status = 'confirming' AND slot = 7""",
        attempts,
    ) == ASKED
    for table in ("chain_requests", "pending_transactions"):
        touched = _rows_touched(delivered, table)
        assert touched and max(touched) <= BOUND, (table, touched, delivered)


def _executions(plans: list[str], statement: str) -> int:
    """How many executed plans are of a statement starting with `statement`."""
    return sum(1 for plan in plans if f"Query Text: {statement}" in plan)


async def test_a_batch_writes_each_table_in_one_execution_probing_one_row_per_id(
    admin_conn: asyncpg.Connection, explained: list[str]
) -> None:
    """The confirmation's ticket, request and observation writes, and the group's submitted
    marks: one execution per batch (a ticket update prepares its 11 checks, 5 triggers and
    generated column per execution), still one probe per id without statistics."""
    conn, plans = admin_conn, explained
    tenant, ticket_ids = await _burst(conn)
    attempts, queued = await _leased_and_queued(conn, ticket_ids)
    await conn.execute(
        "UPDATE tickets SET status = 'sold' WHERE id = ANY($1::uuid[])", ticket_ids[:ASKED]
    )
    read = TxSnapshot(TxStatus.PENDING, 1, 2**40, None, None, False)
    after = TxSnapshot(TxStatus.CONFIRMING, 1, 2**40, None, None, False)
    half = ASKED // 2
    async with conn.transaction():
        await conn.execute("SET LOCAL ROLE chainworker_app")
        await conn.execute("SELECT set_tenant_context($1)", tenant)
        (await _delivered(conn, plans)).clear()
        await requests.mark_submitted(conn, [(r, f"sig-{r}", 1) for r in queued])
        await live_transactions.record_observations(
            conn, OWNER, [live_transactions.Observed(a, read, after, slot=7) for a in attempts]
        )
        await tickets.set_minted_many(conn, [
            (t, f"mint-{n}", f"wallet-{n}" if n % 2 else None, "minted" if n % 3 else None)
            for n, t in enumerate(ticket_ids[:half])
        ])
        await tickets.set_status_many(conn, [(t, "refunded") for t in ticket_ids[half:ASKED]])
        await requests.settle_many(conn, [
            requests.Settlement(r, RequestStatus.CONFIRMED, token_mint=f"mint-{n}",
                                signature=f"landed-{n}")
            for n, r in enumerate(queued)
        ])
    delivered = list(await _delivered(conn, plans))
    for statement in ("UPDATE chain_requests", "UPDATE pending_transactions",
                      "UPDATE tickets"):
        executions = _executions(delivered, statement)
        # the requests: marked submitted, then settled; the tickets: minted, then refunded
        assert executions == (1 if statement == "UPDATE pending_transactions" else 2), (
            statement, executions, delivered,
        )
    for table in ("chain_requests", "pending_transactions", "tickets"):
        touched = _rows_touched(delivered, table)
        assert touched and max(touched) <= BOUND, (table, touched, delivered)
    minted = await conn.fetch(
        """SELECT id, token_mint, wallet_address, status, is_nft, minted_at IS NOT NULL AS m
             FROM tickets WHERE id = ANY($1::uuid[])""",
        ticket_ids[:ASKED],
    )
    by_id = {row["id"]: row for row in minted}
    for n, ticket in enumerate(ticket_ids[:half]):
        row = by_id[ticket]
        assert (row["token_mint"], row["is_nft"], row["m"]) == (f"mint-{n}", True, True)
        assert row["status"] == ("minted" if n % 3 else "sold")
        if n % 2:
            assert row["wallet_address"] == f"wallet-{n}"
    assert {by_id[t]["status"] for t in ticket_ids[half:ASKED]} == {"refunded"}
    settled = await conn.fetch(
        """SELECT id, status, token_mint, tx_signature, completed_at IS NOT NULL AS done
             FROM chain_requests WHERE id = ANY($1::uuid[])""",
        queued,
    )
    assert {(r["status"], r["done"]) for r in settled} == {("confirmed", True)}
    assert {r["id"]: r["tx_signature"] for r in settled} == {
        r: f"landed-{n}" for n, r in enumerate(queued)
    }


def _own_rows_touched(plans: list[str], table: str) -> list[int]:
    """`_rows_touched` counting only the scans of `table` itself: a statement's CTEs pass
    each row on several times (CTE and function scans), which say nothing of the table."""
    return _rows_touched(
        ["\n".join(line for line in plan.splitlines()
                   if f" on {table} " in line or "Removed" in line)
         for plan in plans],
        table,
    )


def _plans_with(plans: list[str], node: str) -> int:
    """How many executed plans, nested ones included, have a plan node `node`."""
    return sum(1 for plan in plans if node in plan)


async def test_a_group_records_and_a_round_confirms_in_one_execution_per_table(
    admin_conn: asyncpg.Connection, explained: list[str]
) -> None:
    """The group's attempts and the round's confirmations, with their sync-log entries and
    spend: one INSERT or UPDATE per table for the batch, not one per row through the seed's
    create_pending_transaction and confirm_transaction (migration 118), still one probe
    per signature without statistics."""
    conn, plans = admin_conn, explained
    tenant, ticket_ids = await _burst(conn)
    event = await conn.fetchval("SELECT event_id FROM tickets WHERE id = $1", ticket_ids[0])
    _, queued = await _leased_and_queued(conn, ticket_ids)
    ticket_of: dict[uuid.UUID, uuid.UUID] = {
        row["id"]: row["ticket_id"] for row in await conn.fetch(
            "SELECT id, ticket_id FROM chain_requests WHERE id = ANY($1::uuid[])", queued
        )
    }
    new = [
        transactions.NewAttempt(
            tenant_id=tenant, ticket_id=ticket_of[request], event_id=event, transfer_id=None,
            request_id=request, op="mint", signature=str(Signature(secrets.token_bytes(64))),
            blockhash="11111111111111111111111111111111", last_valid_block_height=2**40,
            serialized_tx=b"\x01", attempt=1, parent_tx_id=None, job_id=None, max_retries=3,
            estimated_lamports=5_000, spend_reserved=5_000,
        )
        for request in queued
    ]
    async with conn.transaction():
        await conn.execute("SET LOCAL ROLE chainworker_app")
        await conn.execute("SELECT set_tenant_context($1)", tenant)
        await conn.fetchval("SELECT chainworker_spend_reserve($1::bigint[])", [5_000] * ASKED)
        (await _delivered(conn, plans)).clear()
        ids = await transactions.record_attempts(conn, new)
        await live_transactions.confirm_many(conn, [(a.signature, 9) for a in new])
    delivered = list(await _delivered(conn, plans))
    assert await conn.fetchval(
        """SELECT count(*) FROM pending_transactions
            WHERE id = ANY($1::uuid[]) AND status = 'confirmed' AND slot = 9""",
        ids,
    ) == ASKED
    assert [
        row["ticket_id"] for row in await conn.fetch(
            "SELECT ticket_id FROM pending_transactions WHERE id = ANY($1::uuid[])"
            " ORDER BY array_position($1::uuid[], id)",
            ids,
        )
    ] == [a.ticket_id for a in new]  # ids in the order asked
    for node in ("Insert on pending_transactions", "Update on pending_transactions",
                 "Insert on blockchain_sync_log", "Insert on spending_transactions"):
        assert _plans_with(delivered, node) == 1, (node, _plans_with(delivered, node))
    touched = _own_rows_touched(delivered, "pending_transactions")
    assert touched and max(touched) <= BOUND, (touched, delivered)


async def test_a_settlement_probes_one_row_per_attempt_after_a_stale_analyze(
    admin_conn: asyncpg.Connection, explained: list[str]
) -> None:
    """Statistics taken when no attempt was live (autovacuum's, a minute into a burst)
    make the live-ticket index look empty: a probe that names the live statuses was
    planned through it, reading every live row of the tenant for each signature (1,239
    rows per probe in the worker bench). A settlement's lock of its attempts and their
    confirmation; an attempt's lock, its end and its quarantine."""
    conn, plans = admin_conn, explained
    seeded = await seed_data.seed_tenant(conn, tickets=LIVE + ASKED, users=20)
    submitted = datetime.now(UTC) - timedelta(seconds=5)

    def rows(tickets: list[uuid.UUID], status: str) -> list[tuple[Any, ...]]:
        return [
            (uuid.uuid4(), seeded.tenant_id, ticket, "mint", status,
             "11111111111111111111111111111111", 2**40,
             str(Signature(secrets.token_bytes(64))), 3, submitted, submitted)
            for ticket in tickets
        ]

    columns = ["id", "tenant_id", "ticket_id", "tx_type", "status", "blockhash",
               "last_valid_block_height", "tx_signature", "max_retries", "submitted_at",
               "last_sent_at"]
    await conn.copy_records_to_table(
        "pending_transactions", records=rows(seeded.ticket_ids, "expired"), columns=columns
    )
    await conn.execute("ANALYZE pending_transactions")  # nothing live yet
    live = rows(seeded.ticket_ids, "pending")
    await conn.copy_records_to_table("pending_transactions", records=live, columns=columns)
    landed = [(str(row[7]), 11) for row in live[:ASKED]]
    async with conn.transaction():
        await conn.execute("SET LOCAL ROLE chainworker_app")
        await conn.execute("SELECT set_tenant_context($1)", seeded.tenant_id)
        (await _delivered(conn, plans)).clear()
        locked = await live_transactions.lock_live_many(conn, [row[0] for row in live[:ASKED]])
        await live_transactions.confirm_many(conn, landed)
        # One attempt expired, one set aside: by id too.
        expired, set_aside = live[ASKED][0], live[ASKED + 1][0]
        assert await live_transactions.lock_live(conn, expired) is not None
        await live_transactions.finish(conn, expired, TxStatus.EXPIRED)
        assert await live_transactions.lock_live(conn, expired) is None
        await live_transactions.quarantine(conn, [(set_aside, "a poison row")])
    delivered = list(await _delivered(conn, plans))
    assert set(locked) == {row[0] for row in live[:ASKED]}
    assert await conn.fetchval(
        "SELECT status FROM pending_transactions WHERE id = $1", expired
    ) == "expired"
    assert await conn.fetchval(
        "SELECT quarantined_at IS NOT NULL FROM pending_transactions WHERE id = $1", set_aside
    )
    assert await conn.fetchval(
        "SELECT count(*) FROM pending_transactions WHERE status = 'confirmed' AND slot = 11"
    ) == ASKED
    touched = _own_rows_touched(delivered, "pending_transactions")
    assert touched and max(touched) <= BOUND, (touched, delivered)
