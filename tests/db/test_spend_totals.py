"""Running spend totals, reservations and their settlement (migration 109), in PostgreSQL.

The totals must always equal what spending_transactions says; a reservation is held from
signing until its attempt settles, and concurrent signers never pass a limit together.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import asyncpg
import pytest

from chainworker.db import audit, live_transactions, transactions
from chainworker.db import seed as seed_data
from chainworker.db.transactions import NewAttempt
from chainworker.lifecycle.model import TxStatus
from tests.conftest import TestDatabase

COST, RENT = 4_500_000, 4_000_000


@pytest.fixture
def admin(admin_conn: asyncpg.Connection) -> asyncpg.Connection:
    return admin_conn


@pytest.fixture
def app(app_conn: asyncpg.Connection) -> asyncpg.Connection:
    return app_conn


async def set_limits(
    admin: asyncpg.Connection, tenant: UUID, per_tx: int, daily: int, weekly: int, monthly: int
) -> None:
    await admin.execute(
        """INSERT INTO spending_limits (tenant_id, user_id, currency, per_transaction_limit,
                                        daily_limit, weekly_limit, monthly_limit)
           VALUES ($1, NULL, 'LAM', $2, $3, $4, $5)""",
        tenant, per_tx, daily, weekly, monthly,
    )


async def totals(admin: asyncpg.Connection, tenant: UUID) -> dict[tuple[str, object], int]:
    rows = await admin.fetch(
        "SELECT period, period_start, spent FROM chainworker_spend_totals WHERE tenant_id = $1",
        tenant,
    )
    return {(row["period"], row["period_start"]): int(row["spent"]) for row in rows}


async def recounted(admin: asyncpg.Connection, tenant: UUID) -> dict[tuple[str, object], int]:
    """The totals computed afresh from every tenant-wide LAM charge."""
    rows = await admin.fetch(
        """SELECT p.period, p.period_start, sum(s.amount) AS spent
             FROM spending_transactions s
            CROSS JOIN LATERAL (VALUES
                ('day', (s.created_at AT TIME ZONE 'UTC')::date),
                ('week', date_trunc('week', s.created_at AT TIME ZONE 'UTC')::date),
                ('month', date_trunc('month', s.created_at AT TIME ZONE 'UTC')::date))
                  AS p(period, period_start)
            WHERE s.tenant_id = $1 AND s.user_id IS NULL AND s.currency = 'LAM'
            GROUP BY 1, 2""",
        tenant,
    )
    return {(row["period"], row["period_start"]): int(row["spent"]) for row in rows}


async def in_flight(admin: asyncpg.Connection, tenant: UUID) -> int:
    return int(await admin.fetchval(
        """SELECT coalesce(sum(lamports) FILTER (WHERE side = 'reserved'), 0)
                  - coalesce(sum(lamports) FILTER (WHERE side = 'released'), 0)
             FROM chainworker_spend_reservations WHERE tenant_id = $1""",
        tenant,
    ))


async def test_any_charge_moves_the_totals(
    fresh_db: TestDatabase, admin: asyncpg.Connection, app: asyncpg.Connection
) -> None:
    seeded = await seed_data.seed_tenant(admin, tickets=1)
    tenant, user = seeded.tenant_id, seeded.user_ids[0]
    now = datetime.now(UTC)
    charge = """INSERT INTO spending_transactions (tenant_id, user_id, amount, currency, created_at)
                VALUES ($1, $2, $3, $4, $5)"""
    async with app.transaction():  # the runtime role, two rows in one statement
        await app.execute("SELECT set_tenant_context($1)", tenant)
        await app.execute(
            """INSERT INTO spending_transactions (tenant_id, user_id, amount, currency)
               VALUES ($1, NULL, 700, 'LAM'), ($1, NULL, 300, 'LAM')""",
            tenant,
        )
    service = await asyncpg.connect(fresh_db.service_dsn)  # the ticket service
    try:
        async with service.transaction():
            await service.execute("SELECT set_tenant_context($1)", tenant)
            await service.execute(charge, tenant, None, 50, "LAM", now)
            await service.execute(charge, tenant, user, 9_999, "USD", now)  # a user's, in USD
            await service.execute(charge, tenant, None, 20, "LAM", now - timedelta(days=1))
            await service.execute(charge, tenant, None, 4, "LAM", now - timedelta(days=40))
    finally:
        await service.close()
    await admin.copy_records_to_table(
        "spending_transactions", records=[(uuid4(), tenant, None, 1, "LAM", now) for _ in range(3)],
        columns=["id", "tenant_id", "user_id", "amount", "currency", "created_at"],
    )
    found = await totals(admin, tenant)
    assert found == await recounted(admin, tenant)
    today = now.date()
    assert found[("day", today)] == 700 + 300 + 50 + 3
    monday = today - timedelta(days=today.weekday())
    yesterday_in_week = (today - timedelta(days=1)) >= monday
    assert found[("week", monday)] == 1053 + (20 if yesterday_in_week else 0)


async def attempt(seeded: seed_data.Seeded, ticket: UUID, n: int, reserved: bool) -> NewAttempt:
    return NewAttempt(
        tenant_id=seeded.tenant_id, ticket_id=ticket, event_id=seeded.event_id,
        transfer_id=None, request_id=uuid4(), op="mint", signature=f"sig-{uuid4().hex}",
        blockhash="11111111111111111111111111111111", last_valid_block_height=1000,
        serialized_tx=b"\x01", attempt=n, parent_tx_id=None, job_id=None, max_retries=3,
        estimated_lamports=COST, estimated_rent=RENT,
        spend_reserved=COST if reserved else None,
    )


async def test_settling_releases_the_reservation_and_charges_what_was_paid(
    admin: asyncpg.Connection, app: asyncpg.Connection
) -> None:
    seeded = await seed_data.seed_tenant(admin, tickets=6)
    tenant = seeded.tenant_id
    await set_limits(admin, tenant, COST, 10 * COST, 10 * COST, 10 * COST)
    async with app.transaction():
        await app.execute("SELECT set_tenant_context($1)", tenant)
        assert await audit.reserve_spend(app, [COST] * 5) == [None] * 5
        new = [await attempt(seeded, t, 1, reserved=True) for t in seeded.ticket_ids[:5]]
        # One more, signed while the limit was not yet known: nothing reserved.
        new.append(await attempt(seeded, seeded.ticket_ids[5], 1, reserved=False))
        ids = await transactions.record_attempts(app, new)
    assert await in_flight(admin, tenant) == 5 * COST
    confirmed, failed, replaced, expired, confirming, unreserved = ids
    async with app.transaction():
        await app.execute("SELECT set_tenant_context($1)", tenant)
        await live_transactions.confirm_many(app, [(new[0].signature, 10), (new[5].signature, 10)])
        await live_transactions.fail(app, new[1].signature, "Custom(1)", "insufficient funds", 7)
        await live_transactions.finish(app, replaced, TxStatus.REPLACED)
        await live_transactions.finish(app, expired, TxStatus.EXPIRED)
        await app.execute(
            "UPDATE pending_transactions SET status = 'confirming' WHERE id = $1", confirming
        )
        # What this transaction charged, for the metrics.
        assert await audit.charged_lamports(app, [confirmed, unreserved]) == 2 * COST
        assert await audit.charged_lamports(app, [failed]) == COST - RENT
    charges = await admin.fetch(
        """SELECT reference_id, amount FROM spending_transactions
            WHERE tenant_id = $1 AND reference_type = 'pending_transaction'""",
        tenant,
    )
    assert {row["reference_id"]: int(row["amount"]) for row in charges} == {
        confirmed: COST, unreserved: COST, failed: COST - RENT,
    }
    assert await in_flight(admin, tenant) == COST  # the one still confirming
    assert await totals(admin, tenant) == await recounted(admin, tenant)

    async with app.transaction():
        await app.execute("SELECT set_tenant_context($1)", tenant)
        await live_transactions.confirm_many(app, [(new[4].signature, 11)])
        # Settled again (a replaced attempt found to have landed): only the difference.
        await app.execute(
            "UPDATE pending_transactions SET status = 'confirmed' WHERE id = ANY($1::uuid[])",
            [replaced, failed],
        )
        # From one final status to another: nothing is released twice, nothing charged.
        await app.execute(
            "UPDATE pending_transactions SET status = 'replaced' WHERE id = $1", expired
        )
    assert await in_flight(admin, tenant) == 0
    paid = await admin.fetchval(
        "SELECT sum(amount) FROM spending_transactions WHERE tenant_id = $1", tenant
    )
    assert paid == 4 * COST + COST  # four confirmed, and the failed one's fee and then rent
    assert await totals(admin, tenant) == await recounted(admin, tenant)


async def reserved_attempts(
    admin: asyncpg.Connection, app: asyncpg.Connection, count: int,
    per_transaction: int = COST,
) -> tuple[UUID, list[NewAttempt]]:
    """A new tenant with limits of 10 * COST a period and `count` live attempts, each
    holding its reservation of COST."""
    seeded = await seed_data.seed_tenant(admin, tickets=count)
    await set_limits(admin, seeded.tenant_id, per_transaction, 10 * COST, 10 * COST, 10 * COST)
    async with app.transaction():
        await app.execute("SELECT set_tenant_context($1)", seeded.tenant_id)
        assert await audit.reserve_spend(app, [COST] * count) == [None] * count
        new = [await attempt(seeded, t, 1, reserved=True) for t in seeded.ticket_ids]
        await transactions.record_attempts(app, new)
    return seeded.tenant_id, new


async def test_a_settlement_locks_no_spend_row_until_it_commits(
    fresh_db: TestDatabase, admin: asyncpg.Connection, app: asyncpg.Connection
) -> None:
    """Settlements of one tenant ran one after the other: each held the tenant's released
    row and totals from its first attempt to its commit. Now they are moved at commit."""
    tenant, new = await reserved_attempts(admin, app, 3, per_transaction=10 * COST)
    async with app.transaction():  # the first charge makes the day's, week's, month's rows
        await app.execute("SELECT set_tenant_context($1)", tenant)
        await live_transactions.confirm_many(app, [(new[0].signature, 10)])
    other = await asyncpg.connect(fresh_db.admin_dsn)  # may lock what the runtime role reads
    try:
        async with app.transaction():
            await app.execute("SELECT set_tenant_context($1)", tenant)
            await live_transactions.confirm_many(app, [(new[1].signature, 11)])
            await live_transactions.fail(app, new[2].signature, "Custom(1)", "no funds", 7)
            async with other.transaction():  # what a second settlement takes, meanwhile
                locked = await other.fetchval(
                    """SELECT count(*) FROM (
                           SELECT 1 FROM chainworker_spend_totals
                            WHERE tenant_id = $1 FOR UPDATE NOWAIT) t""",
                    tenant,
                ) + await other.fetchval(
                    """SELECT count(*) FROM (
                           SELECT 1 FROM chainworker_spend_reservations
                            WHERE tenant_id = $1 FOR UPDATE NOWAIT) r""",
                    tenant,
                )
                assert locked == 5  # three periods, reserved and released: none was held
            # What this transaction settled already counts for what it signs next: spent
            # 3 * COST - RENT (two confirmed, one fee), nothing in flight.
            spent = 3 * COST - RENT
            [reason] = await audit.reserve_spend(app, [10 * COST - spent + 1])
            assert reason is not None and reason.startswith("daily limit: "), reason
            assert float(reason.split()[2]) == spent, reason
            # The earlier release's check too: what fits exactly, with nothing held.
            assert await app.fetchval(
                "SELECT chainworker_spend_refusal($1)", 10 * COST - spent
            ) is None
    finally:
        await other.close()
    assert await in_flight(admin, tenant) == 0
    assert await totals(admin, tenant) == await recounted(admin, tenant)
    assert (await totals(admin, tenant))[("day", datetime.now(UTC).date())] == 3 * COST - RENT
    assert await admin.fetchval("SELECT count(*) FROM chainworker_spend_unfolded") == 0


async def test_what_a_rolled_back_savepoint_settled_is_never_counted(
    admin: asyncpg.Connection, app: asyncpg.Connection
) -> None:
    tenant, new = await reserved_attempts(admin, app, 2)
    async with app.transaction():
        await app.execute("SELECT set_tenant_context($1)", tenant)
        await live_transactions.confirm_many(app, [(new[0].signature, 10)])
        with contextlib.suppress(RuntimeError):
            async with app.transaction():  # a savepoint, rolled back
                await live_transactions.confirm_many(app, [(new[1].signature, 10)])
                raise RuntimeError("rolled back")
    assert await in_flight(admin, tenant) == COST  # the second is still live and held
    assert await totals(admin, tenant) == await recounted(admin, tenant)
    assert (await totals(admin, tenant))[("day", datetime.now(UTC).date())] == COST


async def test_what_an_attempt_costs_and_reserved_is_fixed(
    admin: asyncpg.Connection, app: asyncpg.Connection
) -> None:
    seeded = await seed_data.seed_tenant(admin, tickets=1)
    async with app.transaction():
        await app.execute("SELECT set_tenant_context($1)", seeded.tenant_id)
        [tx] = await transactions.record_attempts(
            app, [await attempt(seeded, seeded.ticket_ids[0], 1, reserved=True)]
        )
        await app.execute(  # other metadata may change
            "UPDATE pending_transactions SET metadata = metadata || '{\"note\": 1}' WHERE id = $1",
            tx,
        )
    for change in ("metadata - 'spend_reserved'", "'{}'::jsonb",
                   "metadata || '{\"estimated_lamports\": 1}'"):
        async with app.transaction():
            await app.execute("SELECT set_tenant_context($1)", seeded.tenant_id)
            with pytest.raises(asyncpg.IntegrityConstraintViolationError):
                await app.execute(
                    f"UPDATE pending_transactions SET metadata = {change} WHERE id = $1",  # noqa: S608
                    tx,
                )


async def test_reclaimed_rent_is_a_credit_that_lowers_the_totals_once(
    admin: asyncpg.Connection, app: asyncpg.Connection
) -> None:
    seeded = await seed_data.seed_tenant(admin, tickets=1)
    tenant, ticket = seeded.tenant_id, seeded.ticket_ids[0]
    await set_limits(admin, tenant, COST, COST, 10 * COST, 10 * COST)
    mint = await attempt(seeded, ticket, 1, reserved=False)
    reclaimed = 6_570_240
    burn = dataclasses.replace(
        await attempt(seeded, ticket, 1, reserved=False), op="burn", estimated_lamports=10_000,
        estimated_rent=0, rent_reclaimed=reclaimed,
    )
    async with app.transaction():
        await app.execute("SELECT set_tenant_context($1)", tenant)
        await transactions.record_attempts(app, [mint])
        await live_transactions.confirm_many(app, [(mint.signature, 10)])
        # The day's limit is spent: nothing more fits.
        assert (await audit.reserve_spend(app, [10_000]))[0] is not None
        [burn_id] = await transactions.record_attempts(app, [burn])
        await live_transactions.confirm_many(app, [(burn.signature, 11)])
        assert await audit.credit_reclaimed_rent(app, [burn.signature, mint.signature]) == (
            reclaimed
        )
        assert await audit.credit_reclaimed_rent(app, [burn.signature]) == 0  # once
        assert await audit.reclaimed_lamports(app, ticket) == reclaimed
    credit = await admin.fetchrow(
        """SELECT user_id, amount, currency, reference_id FROM spending_transactions
            WHERE tenant_id = $1 AND reference_type = 'rent_reclaimed'""",
        tenant,
    )
    assert credit is not None and dict(credit) == {
        "user_id": None, "amount": -reclaimed, "currency": "LAM", "reference_id": burn_id,
    }
    found = await totals(admin, tenant)
    assert found == await recounted(admin, tenant)
    # Minted and burned the same day: the day spent the fees, less than nothing in rent.
    assert found[("day", datetime.now(UTC).date())] == COST + 10_000 - reclaimed
    async with app.transaction():
        await app.execute("SELECT set_tenant_context($1)", tenant)
        assert await audit.reserve_spend(app, [COST]) == [None]  # room again


@pytest.mark.parametrize(
    ("user", "amount", "reference_type", "currency"),
    [
        (False, -1, "pending_transaction", "LAM"),  # only a credit of reclaimed rent
        (False, -1, None, "LAM"),
        (True, -1, "rent_reclaimed", "LAM"),  # a tenant's, not a user's
        (False, -1, "rent_reclaimed", "USD"),
        (False, 0, "rent_reclaimed", "LAM"),
    ],
)
async def test_no_other_amount_may_be_negative(
    admin: asyncpg.Connection, user: bool, amount: int, reference_type: str | None,
    currency: str,
) -> None:
    seeded = await seed_data.seed_tenant(admin, tickets=1)
    with pytest.raises(asyncpg.CheckViolationError, match="amount_positive"):
        await admin.execute(
            """INSERT INTO spending_transactions (tenant_id, user_id, amount, currency,
                                                  reference_type)
               VALUES ($1, $2, $3, $4, $5)""",
            seeded.tenant_id, seeded.user_ids[0] if user else None, amount, currency,
            reference_type,
        )


async def test_amounts_are_weighed_in_order_with_what_is_spent_and_in_flight(
    admin: asyncpg.Connection, app: asyncpg.Connection
) -> None:
    seeded = await seed_data.seed_tenant(admin, tickets=1)
    tenant = seeded.tenant_id
    await set_limits(admin, tenant, 60, 100, 1000, 1000)
    await admin.execute(
        """INSERT INTO spending_transactions (tenant_id, user_id, amount, currency, created_at)
           VALUES ($1, NULL, 90, 'LAM', now() - interval '1 day')""",
        tenant,
    )
    async with app.transaction():
        await app.execute("SELECT set_tenant_context($1)", tenant)
        # Yesterday's 90 is not today's: 60 fits, the 50 after it does not, 40 does.
        reasons = await audit.reserve_spend(app, [60, 50, 40, 61])
    assert reasons[0] is None and reasons[2] is None
    assert reasons[1] == "daily limit: 60.00 + 50 lamports > 100.00 (60.00 of it in flight)"
    assert reasons[3] == "per-transaction limit: 61 lamports > 60.00"
    assert await in_flight(admin, tenant) == 100
    async with app.transaction():
        await app.execute("SELECT set_tenant_context($1)", tenant)
        assert await audit.reserve_spend(app, [1]) == [
            "daily limit: 100.00 + 1 lamports > 100.00 (100.00 of it in flight)"
        ]
        assert await audit.reserve_spend(app, []) == []
    other = await seed_data.seed_tenant(admin, tickets=1)
    async with app.transaction():  # another tenant's limits and reservations are its own
        await app.execute("SELECT set_tenant_context($1)", other.tenant_id)
        assert await audit.reserve_spend(app, [10**9]) == [None]


async def test_concurrent_signers_at_a_limit_never_pass_it(
    fresh_db: TestDatabase, admin: asyncpg.Connection
) -> None:
    seeded = await seed_data.seed_tenant(admin, tickets=1)
    tenant = seeded.tenant_id
    await set_limits(admin, tenant, 30_000, 1_000_000, 1_000_000, 1_000_000)
    pool = await asyncpg.create_pool(fresh_db.app_dsn, min_size=20, max_size=20)
    assert pool is not None
    try:
        async def sign() -> list[str | None]:
            async with pool.acquire() as conn, conn.transaction():
                await conn.execute("SELECT set_tenant_context($1)", tenant)
                reasons = await audit.reserve_spend(conn, [30_000] * 3)
                await asyncio.sleep(0.01)  # records its attempts, then commits
                return reasons

        results = await asyncio.gather(*(sign() for _ in range(40)))
    finally:
        await pool.close()
    accepted = sum(reason is None for reasons in results for reason in reasons)
    assert accepted == 33  # 33 x 30,000 fit in 1,000,000, whoever came first
    assert await in_flight(admin, tenant) == 33 * 30_000


async def test_the_spend_check_reads_no_history(
    admin: asyncpg.Connection, explained: list[str]
) -> None:
    seeded = await seed_data.seed_tenant(admin, tickets=1)
    await set_limits(admin, seeded.tenant_id, 10, 100, 100, 100)
    async with admin.transaction():
        await admin.execute("SELECT set_tenant_context($1)", seeded.tenant_id)
        explained.clear()
        await admin.fetchval("SELECT chainworker_spend_reserve('{5}')")
    assert any("chainworker_spend_totals" in plan for plan in explained)
    assert not any("spending_transactions" in plan for plan in explained)


async def test_the_relay_claim_and_backlog_use_the_relay_index(
    admin: asyncpg.Connection, explained: list[str]
) -> None:
    seeded = await seed_data.seed_tenant(admin, tickets=1)
    await admin.execute(
        """INSERT INTO outbox (tenant_id, aggregate_type, aggregate_id, event_type,
                               available_at)
           SELECT $1, 'ticket', $2, 'ticket.minted', now() - interval '1 hour'
             FROM generate_series(1, 5000)""",
        seeded.tenant_id, seeded.ticket_ids[0],
    )
    await admin.execute(
        """INSERT INTO outbox (tenant_id, aggregate_type, aggregate_id, event_type, payload)
           VALUES ($1, 'ticket', $2, 'nft.mint_requested', '{}')""",
        seeded.tenant_id, seeded.ticket_ids[0],
    )
    await admin.execute("ANALYZE outbox")
    explained.clear()
    async with admin.transaction():
        claimed = await admin.fetch("SELECT * FROM chainworker_claim_outbox_requests(100)")
    backlog = await admin.fetchrow("SELECT * FROM chainworker_backlog()")
    assert len(claimed) == 1 and backlog["outbox_unprocessed"] == 1
    outbox_plans = [plan for plan in explained if " on outbox" in plan]
    assert len(outbox_plans) >= 2
    assert all("idx_outbox_relay" in plan for plan in outbox_plans), outbox_plans
