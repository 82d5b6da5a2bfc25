"""The stored functions and triggers, called the way the services call them.

Each test seeds its own tenant in the module's database and works as the runtime
role inside that tenant's context, so tests do not see each other's rows.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from tests.db.conftest import Worlds
from tests.db.world import World, seed_world


@pytest.fixture
async def world(worlds: Worlds, module_admin: asyncpg.Connection) -> World:
    return await seed_world(module_admin, f"f{uuid.uuid4().hex[:6]}")


@asynccontextmanager
async def tenant(
    conn: asyncpg.Connection, tenant_id: uuid.UUID | None, **session: str
) -> AsyncIterator[asyncpg.Connection]:
    """A transaction in `tenant_id`'s context, with extra app.* session variables."""
    async with conn.transaction():
        if tenant_id is not None:
            await conn.execute("SELECT set_tenant_context($1)", tenant_id)
        for name, value in session.items():
            await conn.execute("SELECT set_config($1, $2, true)", f"app.{name}", value)
        yield conn


async def one(conn: asyncpg.Connection, sql: str, *args: object) -> tuple:
    """The single row `sql` returns, as a tuple."""
    row = await conn.fetchrow(sql, *args)
    assert row is not None
    return tuple(row)


# --- RLS helpers --------------------------------------------------------------


async def test_tenant_context_is_transaction_local(world: World, module_service):
    async with tenant(module_service, world["tenants"]) as conn:
        assert await conn.fetchval("SELECT current_tenant_id()") == world["tenants"]
        assert await conn.fetchval("SELECT verify_tenant_context()") == world["tenants"]
        await conn.execute("SELECT clear_tenant_context()")
        assert await conn.fetchval("SELECT current_tenant_id()") is None
    assert await module_service.fetchval("SELECT current_tenant_id()") is None
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="tenant context is not set"):
        await module_service.fetchval("SELECT verify_tenant_context()")
    with pytest.raises(asyncpg.NullValueNotAllowedError):
        await module_service.execute("SELECT set_tenant_context(NULL)")


async def test_tenant_violation_is_logged(
    world: World, worlds: Worlds, module_app, module_admin
):
    other = worlds.b["tenants"]
    # The runtime role cannot write the log itself (it could forge or flood it): it goes
    # through chainworker_note_cross_tenant, bounded per token (tests/api/test_isolation.py).
    async with tenant(module_app, world["tenants"]) as conn:
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.fetchval("SELECT log_tenant_violation($1, 'tickets', 'select')", other)
    async with tenant(module_admin, world["tenants"], current_user_id=str(world["users"])) as conn:
        violation = await conn.fetchval(
            "SELECT log_tenant_violation($1, 'tickets', 'select', '{\"ticket\": 1}')", other
        )
    row = await module_admin.fetchrow(
        "SELECT * FROM tenant_access_violations WHERE id = $1", violation
    )
    assert row["tenant_id"] == world["tenants"] and row["attempted_tenant_id"] == other
    assert row["user_id"] == world["users"]
    assert row["table_name"] == "tickets" and row["operation"] == "select"
    # with no context at all it is still recorded
    async with tenant(module_admin, None) as conn:
        anonymous = await conn.fetchval(
            "SELECT log_tenant_violation($1, 'outbox', 'insert')", other
        )
    assert (
        await module_admin.fetchval(
            "SELECT tenant_id FROM tenant_access_violations WHERE id = $1", anonymous
        )
        is None
    )


# --- duplicate scans ------------------------------------------------------------


async def test_duplicate_scan_inside_and_outside_the_window(
    world: World, module_service, module_admin
):
    ticket = world["tickets"]
    async with tenant(module_service, world["tenants"]) as conn:
        # the seeded accepted scan happened just now
        check = await conn.fetchrow("SELECT * FROM check_duplicate_scan($1, 300)", ticket)
        assert check["is_duplicate"] and check["scan_count"] == 1
    await module_admin.execute(
        "UPDATE ticket_scans SET scanned_at = now() - interval '10 minutes' WHERE id = $1",
        world["ticket_scans"],
    )
    async with tenant(module_service, world["tenants"]) as conn:
        outside = await conn.fetchrow("SELECT * FROM check_duplicate_scan($1, 300)", ticket)
        assert not outside["is_duplicate"] and outside["scan_count"] == 1
        assert outside["last_scan_at"] < datetime.now(UTC) - timedelta(minutes=9)
        assert (await conn.fetchrow("SELECT * FROM check_duplicate_scan($1, 3600)", ticket))[
            "is_duplicate"
        ]

        first = await conn.fetchrow(
            "SELECT * FROM record_scan_attempt($1, p_device_id => 'gate-1', p_location => 'north')",
            ticket,
        )
        assert first["result"] == "accepted" and not first["is_duplicate"]
        assert first["scan_count"] == 2
        again = await conn.fetchrow("SELECT * FROM record_scan_attempt($1)", ticket)
        assert again["result"] == "duplicate" and again["is_duplicate"]
        refused = await conn.fetchrow(
            "SELECT * FROM record_scan_attempt($1, 'wrong_event', p_reason => 'other show')", ticket
        )
        assert refused["result"] == "wrong_event" and not refused["is_duplicate"]
        stored = await conn.fetchrow("SELECT * FROM ticket_scans WHERE id = $1", first["scan_id"])
        assert stored["device_id"] == "gate-1" and stored["tenant_id"] == world["tenants"]
        assert await conn.fetchval("SELECT scan_count FROM tickets WHERE id = $1", ticket) == 1
        never = await conn.fetchrow(
            "SELECT * FROM check_duplicate_scan($1, 300)",
            uuid.uuid4(),
        )
        assert not never["is_duplicate"] and never["last_scan_at"] is None
        assert never["scan_count"] == 0


# --- idempotency ----------------------------------------------------------------


ACQUIRE = "SELECT * FROM acquire_idempotency_key($1, $2, 'mint', $3, $4, $5, $6)"


async def acquire(conn, tenant_id, key, body_hash="h", holder="w", lock=30, ttl=3600):
    async with tenant(conn, tenant_id):
        return await conn.fetchrow(ACQUIRE, tenant_id, key, body_hash, holder, lock, ttl)


async def test_idempotency_acquire_from_two_connections_one_wins(world: World, worlds: Worlds):
    first = await asyncpg.connect(worlds.app_dsn)
    second = await asyncpg.connect(worlds.app_dsn)
    try:
        results = await asyncio.gather(
            acquire(first, world["tenants"], "race", holder="one"),
            acquire(second, world["tenants"], "race", holder="two"),
        )
    finally:
        await first.close()
        await second.close()
    outcomes = sorted(row["outcome"] for row in results)
    assert outcomes == ["acquired", "in_progress"]
    assert sum(row["acquired"] for row in results) == 1
    assert results[0]["key_id"] == results[1]["key_id"]


async def test_idempotency_complete_then_cached_and_mismatch(world: World, module_service):
    t = world["tenants"]
    won = await acquire(module_service, t, "order-1", body_hash="abc")
    assert won["outcome"] == "acquired"
    async with tenant(module_service, t) as conn:
        assert await conn.fetchval(
            "SELECT complete_idempotency_key($1, 201, '{\"id\": 7}', 'ticket', $2)",
            won["key_id"],
            world["tickets"],
        )
        assert not await conn.fetchval(
            "SELECT complete_idempotency_key($1, 201, '{}')", won["key_id"]
        )
    cached = await acquire(module_service, t, "order-1", body_hash="abc")
    assert cached["outcome"] == "cached" and not cached["acquired"]
    assert cached["response_status"] == 201 and cached["response_body"] == '{"id": 7}'
    mismatch = await acquire(module_service, t, "order-1", body_hash="different")
    assert mismatch["outcome"] == "hash_mismatch" and not mismatch["acquired"]


async def test_idempotency_lock_expiry_release_and_cleanup(
    world: World, module_service, module_admin
):
    t = world["tenants"]
    short = await acquire(module_service, t, "short", lock=0)
    assert short["outcome"] == "acquired"
    taken_over = await acquire(module_service, t, "short", holder="second")
    assert taken_over["outcome"] == "acquired" and taken_over["key_id"] == short["key_id"]
    assert await acquire(module_service, t, "short") == await acquire(module_service, t, "short")
    assert (await acquire(module_service, t, "short"))["outcome"] == "in_progress"

    async with tenant(module_service, t) as conn:
        assert await conn.fetchval("SELECT release_idempotency_lock($1, true)", short["key_id"])
        assert (
            await conn.fetchval(
                "SELECT status FROM idempotency_keys WHERE id = $1", short["key_id"]
            )
            == "failed"
        )
        assert not await conn.fetchval("SELECT release_idempotency_lock($1)", short["key_id"])
    retried = await acquire(module_service, t, "short")
    assert retried["outcome"] == "acquired"
    async with tenant(module_service, t) as conn:
        assert await conn.fetchval("SELECT release_idempotency_lock($1)", short["key_id"])
    assert (await acquire(module_service, t, "short"))["outcome"] == "acquired"

    expired = await acquire(module_service, t, "expired", ttl=0, lock=0)
    expired_but_locked = await acquire(module_service, t, "busy", ttl=0, lock=600)
    kept = await acquire(module_service, t, "kept")
    async with tenant(module_service, None) as conn:  # a cleanup job has no tenant
        removed = await conn.fetchval("SELECT cleanup_expired_idempotency_keys()")
    assert removed >= 1
    remaining = {
        row["id"]
        for row in await module_admin.fetch(
            "SELECT id FROM idempotency_keys WHERE tenant_id = $1", t
        )
    }
    assert expired["key_id"] not in remaining
    assert {expired_but_locked["key_id"], kept["key_id"]} <= remaining
    # an expired record is forgotten: the key starts over even with another body
    again = await acquire(module_service, t, "gone", ttl=0, lock=0)
    fresh = await acquire(module_service, t, "gone", body_hash="new body")
    assert fresh["outcome"] == "acquired" and fresh["key_id"] == again["key_id"]


# --- pending transactions ---------------------------------------------------------


async def test_pending_transaction_lifecycle(world: World, module_service, module_admin):
    t, ticket = world["tenants"], world["tickets"]
    seeded = await module_admin.fetchval(
        "SELECT tx_signature FROM pending_transactions WHERE id = $1", world["pending_transactions"]
    )
    async with tenant(module_service, t) as conn:
        assert await conn.fetchval("SELECT has_pending_transaction($1)", ticket)
        # one live transaction per ticket
        with pytest.raises(asyncpg.UniqueViolationError, match="uq_pending_tx_live_ticket"):
            async with conn.transaction():
                await conn.fetchval(
                    "SELECT create_pending_transaction($1, 'other', 'mint', $2)", t, ticket
                )
        assert await conn.fetchval(
            "SELECT fail_transaction($1, 'Custom(0)', 'already in use')", seeded
        )
        assert not await conn.fetchval("SELECT fail_transaction($1, 'x', 'y')", seeded)
        failed = await conn.fetchrow("SELECT * FROM get_pending_transaction_status($1)", seeded)
        assert failed["status"] == "failed" and failed["error_code"] == "Custom(0)"
        assert failed["error_message"] == "already in use"
        assert not await conn.fetchval("SELECT has_pending_transaction($1)", ticket)

        # seed-style call, then one with chainworker's trailing parameters
        signature = f"sig-{uuid.uuid4().hex}"
        tx_id = await conn.fetchval(
            "SELECT create_pending_transaction($1, $2, 'mint', $3, $4, 'blockhash1', 5000)",
            t,
            signature,
            ticket,
            world["events"],
        )
        row = await conn.fetchrow("SELECT * FROM pending_transactions WHERE id = $1", tx_id)
        assert row["status"] == "pending" and row["attempt"] == 1 and row["tenant_id"] == t
        assert row["last_valid_block_height"] == 5000 and row["serialized_tx"] is None
        assert await conn.fetchval("SELECT confirm_transaction($1, 4321, now())", signature)
        assert not await conn.fetchval("SELECT confirm_transaction($1, 4321, now())", signature)
        confirmed = await conn.fetchrow(
            "SELECT * FROM get_pending_transaction_status($1)", signature
        )
        assert confirmed["status"] == "confirmed" and confirmed["slot"] == 4321
        assert confirmed["confirmed_at"] is not None and confirmed["block_time"] is not None

        retry_sig = f"sig-{uuid.uuid4().hex}"
        retry = await conn.fetchval(
            """SELECT create_pending_transaction($1, $2, 'transfer', $3, p_attempt => 2,
                   p_parent_tx_id => $4, p_serialized_tx => $5, p_job_id => 'job-9',
                   p_request_id => $6, p_transfer_id => $7)""",
            t,
            retry_sig,
            ticket,
            tx_id,
            b"\x01\x02",
            uuid.uuid4(),
            world["ticket_transfers"],
        )
        row = await conn.fetchrow("SELECT * FROM pending_transactions WHERE id = $1", retry)
        assert row["attempt"] == 2 and row["parent_tx_id"] == tx_id
        assert row["serialized_tx"] == b"\x01\x02" and row["job_id"] == "job-9"
        assert await conn.fetchval("SELECT confirm_transaction($1, 99)", retry_sig)
        assert await conn.fetchval(
            "SELECT blockchain_confirmed FROM ticket_transfers WHERE id = $1",
            world["ticket_transfers"],
        )
        log = await conn.fetch(
            "SELECT status, tx_signature FROM blockchain_sync_log WHERE ticket_id = $1 ORDER BY id",
            ticket,
        )
        assert [(r["status"], r["tx_signature"]) for r in log] == [
            ("failed", seeded),
            ("confirmed", signature),
            ("confirmed", retry_sig),
        ]
        assert (
            await conn.fetchrow("SELECT * FROM get_pending_transaction_status('unknown')") is None
        )


# --- reservations ------------------------------------------------------------------


async def test_availability_follows_reservations(world: World, module_service):
    t, ticket_type = world["tenants"], world["ticket_types"]
    available = (
        "SELECT available_quantity, reserved_quantity, sold_quantity FROM ticket_types"
        " WHERE id = $1"
    )
    reserve = """INSERT INTO reservations (tenant_id, event_id, ticket_type_id, user_id, quantity)
                 VALUES ($1, $2, $3, $4, $5) RETURNING id"""
    async with tenant(module_service, t, current_user_id=str(world["users"])) as conn:
        assert (await one(conn, available, ticket_type)) == (98, 2, 0)  # seeded: 2 held
        args = (t, world["events"], ticket_type, world["users"])
        expiring = await conn.fetchval(reserve, *args, 3)
        cancelled = await conn.fetchval(reserve, *args, 4)
        confirmed = await conn.fetchval(reserve, *args, 5)
        deleted = await conn.fetchval(reserve, *args, 1)
        assert (await one(conn, available, ticket_type)) == (85, 15, 0)

        await conn.execute("UPDATE reservations SET status = 'expired' WHERE id = $1", expiring)
        await conn.execute(
            "UPDATE reservations SET status = 'cancelled', release_reason = 'user' WHERE id = $1",
            cancelled,
        )
        await conn.execute("UPDATE reservations SET status = 'confirmed' WHERE id = $1", confirmed)
        await conn.execute("DELETE FROM reservations WHERE id = $1", deleted)
        assert (await one(conn, available, ticket_type)) == (93, 2, 5)
        # a released reservation gives nothing back twice
        await conn.execute("UPDATE reservations SET status = 'released' WHERE id = $1", expiring)
        assert (await one(conn, available, ticket_type)) == (93, 2, 5)

        assert await conn.fetchval(
            "SELECT released_at IS NOT NULL FROM reservations WHERE id = $1", expiring
        )
        history = await conn.fetch(
            "SELECT previous_status, new_status, changed_by, reason FROM reservation_history"
            " WHERE reservation_id = $1",
            cancelled,
        )
        assert [tuple(r) for r in history] == [("active", "cancelled", world["users"], "user")]

        with pytest.raises(asyncpg.CheckViolationError, match="not enough tickets available"):
            async with conn.transaction():
                await conn.fetchval(reserve, *args, 94)


# --- user stats ------------------------------------------------------------------------


async def test_user_stats_follow_purchases_and_check_ins(world: World, module_service):
    t, user = world["tenants"], world["users"]
    stats = (
        "SELECT ticket_purchase_count, total_spent_cents, events_attended FROM users WHERE id = $1"
    )
    new_ticket = """INSERT INTO tickets (tenant_id, event_id, user_id, price_cents, status)
                    VALUES ($1, $2, $3, $4, $5) RETURNING id"""
    async with tenant(module_service, t) as conn:
        assert (await one(conn, stats, user)) == (1, 5000, 0)  # the seeded sale
        available = await conn.fetchval(new_ticket, t, world["events"], user, 700, "available")
        assert (await one(conn, stats, user)) == (1, 5000, 0)
        await conn.execute("UPDATE tickets SET status = 'sold' WHERE id = $1", available)
        assert (await one(conn, stats, user)) == (2, 5700, 0)
        await conn.execute("UPDATE tickets SET status = 'checked_in' WHERE id = $1", available)
        await conn.execute(
            "UPDATE tickets SET status = 'checked_in' WHERE id = $1", world["tickets"]
        )
        assert (await one(conn, stats, user)) == (2, 5700, 1)  # one event, once


# --- state machine and history -----------------------------------------------------------


async def test_status_history_captures_session_context(world: World, module_service):
    t, ticket, user = world["tenants"], world["tickets"], world["users"]
    async with tenant(
        module_service,
        t,
        current_user_id=str(user),
        actor_type="service",
        status_change_reason="mint confirmed",
        status_change_source="worker",
    ) as conn:
        await conn.execute("UPDATE tickets SET status = 'minted' WHERE id = $1", ticket)
        row = await conn.fetchrow("SELECT * FROM tickets WHERE id = $1", ticket)
        assert row["status_changed_by"] == user and row["status_reason"] == "mint confirmed"
        assert row["is_nft"] and row["minted_at"] is not None
    async with tenant(module_service, t) as conn:  # no session variables: a system change
        await conn.execute(
            "UPDATE tickets SET status = 'active', status_reason = 'activated' WHERE id = $1",
            ticket,
        )
        await conn.execute("UPDATE tickets SET price = price WHERE id = $1", ticket)  # no change
        history = await conn.fetch("SELECT * FROM get_ticket_state_history($1, 10)", ticket)
        assert [(h["previous_status"], h["new_status"]) for h in history] == [
            ("minted", "active"),
            ("sold", "minted"),
            (None, "sold"),  # the seeded row
        ]
        latest, first, _ = history
        assert (first["changed_by"], first["actor_type"], first["reason"], first["source"]) == (
            user,
            "service",
            "mint confirmed",
            "worker",
        )
        assert (latest["changed_by"], latest["actor_type"], latest["reason"], latest["source"]) == (
            None,
            "system",
            "activated",
            None,
        )
        assert len(await conn.fetch("SELECT * FROM get_ticket_state_history($1, 1)", ticket)) == 1
        manual = await conn.fetchval(
            "SELECT log_ticket_status_change_manual($1, 'active', 'active', 'import', 'backfill')",
            ticket,
        )
        newest = (await conn.fetch("SELECT * FROM get_ticket_state_history($1, 1)", ticket))[0]
        assert newest["id"] == manual and newest["source"] == "backfill"


async def test_final_status_stays_final(world: World, module_service):
    t, ticket = world["tenants"], world["tickets"]
    async with tenant(module_service, t) as conn:
        await conn.execute("UPDATE tickets SET status = 'revoked' WHERE id = $1", ticket)
        with pytest.raises(asyncpg.CheckViolationError, match="final status"):
            async with conn.transaction():
                await conn.execute("UPDATE tickets SET status = 'active' WHERE id = $1", ticket)
    async with tenant(module_service, t, actor_type="admin") as conn:
        await conn.execute("UPDATE tickets SET status = 'active' WHERE id = $1", ticket)
        assert await conn.fetchval("SELECT status FROM tickets WHERE id = $1", ticket) == "active"


async def test_check_in_window_edges(world: World, module_service, module_admin):
    t, ticket = world["tenants"], world["tickets"]
    check = "SELECT * FROM can_check_in_ticket($1, $2, $3)"
    micro = timedelta(microseconds=1)
    async with tenant(module_service, t) as conn:
        now = await conn.fetchval("SELECT now()")  # fixed for the whole transaction
        opens, later = now + timedelta(hours=2), now + timedelta(hours=5)
        assert (await one(conn, check, ticket, opens, later)) == (True, "ok")
        assert (await one(conn, check, ticket, opens + micro, later)) == (
            False,
            "check-in has not opened yet",
        )
        assert (await conn.fetchrow(check, ticket, now - timedelta(hours=1), now))["can_check_in"]
        assert (await one(conn, check, ticket, now - timedelta(hours=3), now - micro)) == (
            False,
            "event has ended",
        )
        early = await conn.fetchrow(
            "SELECT * FROM can_check_in_ticket($1, $2, $3, interval '30 minutes')",
            ticket,
            opens,
            later,
        )
        assert not early["can_check_in"]
        assert not (await conn.fetchrow(check, uuid.uuid4(), now, later))["can_check_in"]
        await conn.execute("UPDATE tickets SET status = 'checked_in' WHERE id = $1", ticket)
        assert (await one(conn, check, ticket, now, later)) == (
            False,
            "ticket already checked_in",
        )
    await module_admin.execute(
        "UPDATE tickets SET expires_at = now() - interval '1 minute',"
        " valid_from = now() - interval '1 day' WHERE id = $1",
        ticket,
    )
    async with tenant(module_service, t, actor_type="admin") as conn:
        await conn.execute("UPDATE tickets SET status = 'active' WHERE id = $1", ticket)
        now = await conn.fetchval("SELECT now()")
        assert (await one(conn, check, ticket, now, now + timedelta(hours=1))) == (
            False,
            "ticket has expired",
        )


# --- transfers -------------------------------------------------------------------------------


async def test_transfer_history_order_and_completion(world: World, module_service, module_admin):
    t, ticket = world["tenants"], world["tickets"]
    insert = """INSERT INTO ticket_transfers (tenant_id, ticket_id, to_email, created_at)
                VALUES ($1, $2, $3, now() + $4::interval) RETURNING id"""
    async with tenant(module_service, t) as conn:
        later = await conn.fetchval(insert, t, ticket, "later@example.test", timedelta(hours=1))
        earlier = await conn.fetchval(
            insert, t, ticket, "earlier@example.test", timedelta(hours=-1)
        )
        history = await conn.fetch("SELECT * FROM get_ticket_transfer_history($1)", ticket)
        assert [h["transfer_id"] for h in history] == [earlier, world["ticket_transfers"], later]
        assert [h["sequence"] for h in history] == [1, 2, 3]
        assert history[0]["from_user_id"] == world["users"]  # defaulted to the holder

        recipient = await conn.fetchval(
            "INSERT INTO users (tenant_id, email) VALUES ($1, 'r@example.test') RETURNING id", t
        )
        await conn.execute(
            "UPDATE ticket_transfers SET to_user_id = $2, to_wallet = 'Wallet111' WHERE id = $1",
            later,
            recipient,
        )
        await conn.execute("UPDATE ticket_transfers SET status = 'accepted' WHERE id = $1", later)
        await conn.execute("UPDATE ticket_transfers SET status = 'completed' WHERE id = $1", later)
        transfer = await conn.fetchrow("SELECT * FROM ticket_transfers WHERE id = $1", later)
        assert transfer["accepted_at"] is not None and transfer["completed_at"] is not None
        moved = await conn.fetchrow("SELECT * FROM tickets WHERE id = $1", ticket)
        assert moved["user_id"] == recipient and moved["wallet_address"] == "Wallet111"
        assert moved["transfer_count"] == 1 and moved["status"] == "transferred"

    await module_admin.execute("UPDATE tickets SET is_transferable = false WHERE id = $1", ticket)
    async with tenant(module_service, t) as conn:
        with pytest.raises(asyncpg.CheckViolationError, match="not transferable"):
            await conn.fetchval(insert, t, ticket, "x@example.test", timedelta(0))


async def test_multisig_votes_decide_the_request(world: World, module_service):
    t, user = world["tenants"], world["users"]
    async with tenant(module_service, t) as conn:
        request = await conn.fetchval(
            """INSERT INTO multisig_approval_requests (tenant_id, operation_type, requested_by,
                   required_approvals) VALUES ($1, 'bulk_burn', $2, 2) RETURNING id""",
            t,
            user,
        )
        other = await conn.fetchval(
            "INSERT INTO users (tenant_id, email) VALUES ($1, 'o@example.test') RETURNING id", t
        )
        approve = (
            "INSERT INTO multisig_approvals (tenant_id, request_id, approver_id)"
            " VALUES ($1, $2, $3)"
        )
        await conn.execute(approve, t, request, user)
        status = "SELECT status, current_approvals FROM multisig_approval_requests WHERE id = $1"
        assert (await one(conn, status, request)) == ("pending", 1)
        await conn.execute(approve, t, request, other)
        assert (await one(conn, status, request)) == ("approved", 2)
