"""chainworker's narrow cross-tenant functions, called as the runtime role without a tenant."""

from __future__ import annotations

from uuid import uuid4

import asyncpg

from tests.conftest import TestDatabase
from tests.db.world import seed_world


async def test_gauge_functions_see_every_tenant_and_reveal_no_ids(fresh_db: TestDatabase) -> None:
    admin = await asyncpg.connect(fresh_db.admin_dsn)
    app = await asyncpg.connect(fresh_db.app_dsn)
    try:
        a, b = await seed_world(admin, "a"), await seed_world(admin, "b")
        # Each world has one pending transaction, one queued request and a ticket.sold event.
        await admin.execute(
            """INSERT INTO outbox (tenant_id, aggregate_type, aggregate_id, event_type)
               VALUES ($1, 'ticket', $2, 'nft.mint_requested')""",
            a["tenants"], a["tickets"],
        )
        await admin.execute(
            """INSERT INTO spending_limits (tenant_id, user_id, currency, per_transaction_limit,
                                            daily_limit, weekly_limit, monthly_limit)
               VALUES ($1, NULL, 'LAM', 1000, 1000, 4000, 10000)""",
            b["tenants"],
        )
        await admin.execute(
            """INSERT INTO spending_transactions (tenant_id, user_id, amount, currency)
               VALUES ($1, NULL, 500, 'LAM')""",
            b["tenants"],
        )
        live = await app.fetch("SELECT * FROM chainworker_live_summary()")
        assert {row["status"]: row["live_count"] for row in live} == {"pending": 2}
        assert all(set(row.keys()) == {"status", "live_count", "oldest_seconds"} for row in live)
        backlog = await app.fetchrow("SELECT * FROM chainworker_backlog()")
        assert (backlog["queued_requests"], backlog["outbox_unprocessed"]) == (2, 1)
        spend = await app.fetch("SELECT * FROM chainworker_spend_utilization()")
        assert {row["period"]: row["ratio"] for row in spend} == {
            "daily": 0.5, "weekly": 0.125, "monthly": 0.05,
        }
        # The same tables read directly, without a tenant, show nothing.
        assert await app.fetchval("SELECT count(*) FROM pending_transactions") == 0
    finally:
        await app.close()
        await admin.close()


async def test_spend_refusal_names_the_limit_it_would_pass(fresh_db: TestDatabase) -> None:
    admin = await asyncpg.connect(fresh_db.admin_dsn)
    app = await asyncpg.connect(fresh_db.app_dsn)
    try:
        world = await seed_world(admin, "a")
        tenant = world["tenants"]
        await admin.execute(
            """INSERT INTO spending_limits (tenant_id, user_id, currency, per_transaction_limit,
                                            daily_limit, weekly_limit, monthly_limit)
               VALUES ($1, NULL, 'LAM', 100, 150, 1000, 1000)""",
            tenant,
        )
        async with app.transaction():
            await app.execute("SELECT set_tenant_context($1)", tenant)
            assert await app.fetchval("SELECT chainworker_spend_refusal(100)") is None
            assert "per-transaction" in await app.fetchval("SELECT chainworker_spend_refusal(101)")
            await app.execute(
                """INSERT INTO spending_transactions (tenant_id, user_id, amount, currency)
                   VALUES ($1, NULL, 100, 'LAM')""",
                tenant,
            )
            assert "daily" in await app.fetchval("SELECT chainworker_spend_refusal(60)")
        other = uuid4()
        async with app.transaction():
            await app.execute("SELECT set_tenant_context($1)", other)
            assert await app.fetchval("SELECT chainworker_spend_refusal(10000)") is None
    finally:
        await app.close()
        await admin.close()


async def test_claims_rotate_through_more_live_rows_than_one_claim_takes(
    fresh_db: TestDatabase,
) -> None:
    admin = await asyncpg.connect(fresh_db.admin_dsn)
    app = await asyncpg.connect(fresh_db.app_dsn)
    try:
        world = await seed_world(admin, "a")
        for n in range(5):
            await admin.execute(
                """INSERT INTO pending_transactions (tenant_id, tx_signature, tx_type,
                                                     last_valid_block_height, submitted_at)
                   VALUES ($1, $2, 'mint', 1000, now() - make_interval(secs => $3))""",
                world["tenants"], f"rotation-{n}", 100 - n,
            )
        live = await admin.fetchval(
            "SELECT count(*) FROM pending_transactions WHERE status IN ('pending', 'confirming')"
        )
        seen: list[set[str]] = []
        for _ in range(3):
            rows = await app.fetch(
                "SELECT tx_signature FROM chainworker_claim_live_transactions('w1', 2, 30)"
            )
            seen.append({row["tx_signature"] for row in rows})
        assert all(len(batch) == 2 for batch in seen)
        assert len(seen[0] | seen[1] | seen[2]) == min(live, 6)  # nobody is starved
        other = await app.fetch(
            "SELECT tx_signature FROM chainworker_claim_live_transactions('w2', 10, 30)"
        )
        assert other == [], "rows leased to w1 are not handed to w2 while the lease runs"
    finally:
        await app.close()
        await admin.close()


async def test_a_lease_is_renewed_only_when_half_of_it_is_gone(fresh_db: TestDatabase) -> None:
    admin = await asyncpg.connect(fresh_db.admin_dsn)
    app = await asyncpg.connect(fresh_db.app_dsn)
    try:
        world = await seed_world(admin, "a")
        tx = world["pending_transactions"]

        async def claim() -> set[object]:
            rows = await app.fetch(
                "SELECT id FROM chainworker_claim_live_transactions('w1', 10, 30)"
            )
            return {row["id"] for row in rows}

        async def lease() -> tuple[object, object, int]:
            row = await admin.fetchrow(
                """SELECT lease_until, xmin::text::bigint AS version,
                          extract(epoch FROM lease_until - now())::int AS left_seconds
                     FROM pending_transactions WHERE id = $1""",
                tx,
            )
            return row["lease_until"], row["version"], row["left_seconds"]

        assert tx in await claim()
        first_until, first_version, left = await lease()
        assert 28 <= left <= 30
        assert tx in await claim()  # still held: returned, not rewritten
        assert (await lease())[:2] == (first_until, first_version)
        await admin.execute(
            "UPDATE pending_transactions SET lease_until = now() + interval '10 seconds'"
            " WHERE id = $1", tx,
        )
        assert tx in await claim()
        assert 28 <= (await lease())[2] <= 30  # less than half left: renewed
    finally:
        await app.close()
        await admin.close()


async def test_spend_refusals_weigh_each_amount_on_its_own(fresh_db: TestDatabase) -> None:
    admin = await asyncpg.connect(fresh_db.admin_dsn)
    app = await asyncpg.connect(fresh_db.app_dsn)
    try:
        world = await seed_world(admin, "a")
        tenant = world["tenants"]
        async with app.transaction():
            await app.execute("SELECT set_tenant_context($1)", tenant)
            no_limit = await app.fetchval("SELECT chainworker_spend_refusals('{5, 7}')")
            assert no_limit == [None, None]
        await admin.execute(
            """INSERT INTO spending_limits (tenant_id, user_id, currency, per_transaction_limit,
                                            daily_limit, weekly_limit, monthly_limit)
               VALUES ($1, NULL, 'LAM', 100, 150, 1000, 1000)""",
            tenant,
        )
        await admin.execute(
            """INSERT INTO spending_transactions (tenant_id, user_id, amount, currency)
               VALUES ($1, NULL, 100, 'LAM')""",
            tenant,
        )
        async with app.transaction():
            await app.execute("SELECT set_tenant_context($1)", tenant)
            reasons = await app.fetchval("SELECT chainworker_spend_refusals('{50, 50, 51, 101}')")
            singles = [
                await app.fetchval("SELECT chainworker_spend_refusal($1)", amount)
                for amount in (50, 50, 51, 101)
            ]
            empty = await app.fetchval("SELECT chainworker_spend_refusals('{}')")
        assert reasons == singles
        assert reasons[:2] == [None, None]  # each fits on its own, even if both would not
        assert reasons[2].startswith("daily limit: 100") and "+ 51 lamports" in reasons[2]
        assert reasons[3].startswith("per-transaction limit")
        assert empty == []
    finally:
        await app.close()
        await admin.close()
