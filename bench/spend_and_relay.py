"""The spend check and the relay claim, with and without history: both must stay flat.

Run: python bench/spend_and_relay.py [--history 300000] [--events 250000] [--runs 500]

Creates a scratch database on the PostgreSQL chainworker finds (machine's or embedded),
migrates it, seeds a tenant with chain spending limits and times, as the runtime role:

- the spend reservation as the worker makes it (the call, in a tenant transaction), for
  one amount and for a group of 64, rolled back after each run so every run sees the
  same totals;
  first with no charges, then with `--history` charges spread over the last 30 days;
- the relay's claim (the call of `chainworker_claim_outbox_requests`, up to 100 rows, in
  a transaction rolled back after each run) with 10 requests waiting: first alone, then
  beside `--events` unconsumed `ticket.*` events of the ticket service's.

Prints the median and p99 of each over `--runs` runs and the ratio with history to
without. The database is dropped afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import asyncpg

from chainworker.db import audit, outbox
from chainworker.db.pool import set_context
from chainworker.db.seed import seed_tenant
from scratch import scratch_database

LIMIT = 10**15  # high enough that every run is accepted, as most are


async def timed(runs: int, call: Callable[[], Awaitable[float]]) -> list[float]:
    """What each of `runs` calls measured (ms), after a few to warm the caches."""
    for _ in range(10):
        await call()
    return [await call() for _ in range(runs)]


def figures(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def report(label: str, before: list[float], after: list[float], history: str) -> None:
    median0, p990 = figures(before)
    median1, p991 = figures(after)
    print(f"{label}: median {median0:.3f} ms, p99 {p990:.3f} ms with no history; "
          f"median {median1:.3f} ms, p99 {p991:.3f} ms with {history} "
          f"(ratio {median1 / median0:.2f} median, {p991 / p990:.2f} p99)")


class Rollback(Exception):
    """Ends a timed transaction without keeping what it did."""


def since(started: float) -> float:
    return (time.perf_counter() - started) * 1000


async def spend_check(conn: asyncpg.Connection, tenant: uuid.UUID, amounts: list[int]) -> float:
    """The reservation call (ms), inside a tenant transaction as the worker makes it."""
    try:
        async with conn.transaction():
            await set_context(conn, tenant, reason="mint submitted")
            started = time.perf_counter()
            reasons = await audit.reserve_spend(conn, amounts)
            elapsed = since(started)
            assert reasons == [None] * len(amounts)
            raise Rollback
    except Rollback:
        pass
    return elapsed


async def relay_claim(conn: asyncpg.Connection, waiting: int) -> float:
    """The claim call (ms), inside the relay's transaction."""
    try:
        async with conn.transaction():
            started = time.perf_counter()
            claimed = await outbox.claim_requests(conn, 100)
            elapsed = since(started)
            assert len(claimed) == waiting
            raise Rollback
    except Rollback:
        pass
    return elapsed


async def add_history(admin: asyncpg.Connection, tenant: uuid.UUID, rows: int) -> None:
    """`rows` tenant-wide charges of 5,000-10,000 lamports over the last 30 days."""
    now = datetime.now(UTC)
    await admin.copy_records_to_table(
        "spending_transactions",
        records=[
            (uuid.uuid4(), tenant, None, random.randint(5_000, 10_000), "LAM",
             "pending_transaction", uuid.uuid4(), now - timedelta(days=30 * random.random()))
            for _ in range(rows)
        ],
        columns=["id", "tenant_id", "user_id", "amount", "currency", "reference_type",
                 "reference_id", "created_at"],
    )


async def add_events(
    admin: asyncpg.Connection, tenant: uuid.UUID, ticket: uuid.UUID, rows: int, event_type: str
) -> None:
    """`rows` unprocessed outbox rows, a little older than now (so due)."""
    due = datetime.now(UTC) - timedelta(minutes=5)
    await admin.copy_records_to_table(
        "outbox",
        records=[(tenant, "ticket", ticket, event_type, due) for _ in range(rows)],
        columns=["tenant_id", "aggregate_type", "aggregate_id", "event_type", "available_at"],
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--history", type=int, default=300_000)
    parser.add_argument("--events", type=int, default=250_000)
    parser.add_argument("--runs", type=int, default=500)
    args = parser.parse_args()

    async with scratch_database() as (server, name, origin):
        admin = await asyncpg.connect(server.admin_dsn(name))
        app = await asyncpg.connect(server.app_dsn(name))
        try:
            seeded = await seed_tenant(admin, tickets=1, tenant_name="Bench")
            tenant, ticket = seeded.tenant_id, seeded.ticket_ids[0]
            await admin.execute(
                """INSERT INTO spending_limits (tenant_id, user_id, currency,
                       per_transaction_limit, daily_limit, weekly_limit, monthly_limit)
                   VALUES ($1, NULL, 'LAM', $2, $2, $2, $2)""",
                tenant, LIMIT,
            )
            await add_events(admin, tenant, ticket, 10, "nft.mint_requested")
            print(f"{origin} PostgreSQL, {args.runs} runs each")

            one = await timed(args.runs, lambda: spend_check(app, tenant, [6_500_000]))
            group = await timed(args.runs, lambda: spend_check(app, tenant, [6_500_000] * 64))
            claim = await timed(args.runs, lambda: relay_claim(app, 10))

            started = time.perf_counter()
            await add_history(admin, tenant, args.history)
            await add_events(admin, tenant, ticket, args.events, "ticket.minted")
            await admin.execute("ANALYZE")
            print(f"history: {args.history:,} charges in the last 30 days and {args.events:,} "
                  f"unconsumed ticket.* events, inserted in {time.perf_counter() - started:.1f}s")

            one_after = await timed(args.runs, lambda: spend_check(app, tenant, [6_500_000]))
            group_after = await timed(
                args.runs, lambda: spend_check(app, tenant, [6_500_000] * 64)
            )
            claim_after = await timed(args.runs, lambda: relay_claim(app, 10))
        finally:
            await app.close()
            await admin.close()
        charges = f"{args.history:,} charges"
        report("spend check, 1 amount", one, one_after, charges)
        report("spend check, a group of 64", group, group_after, charges)
        report("relay claim (10 requests waiting)", claim, claim_after,
               f"{args.events:,} ticket.* events")


if __name__ == "__main__":
    asyncio.run(main())
