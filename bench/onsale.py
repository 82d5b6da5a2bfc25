"""An on-sale as a mainnet leader would give it: N tickets of one event asked at once.

Run: python bench/onsale.py [--tickets 3000] [--slot-ms 400] [--payers 1,2,4,8]
                           [--account-unit-limit 2400000] [--block-unit-limit 60000000]
                           [--competing-rate 200] [--competing-price 1000]

The localnet schedules like a leader: a block holds `--block-unit-limit` units (mainnet:
60M), one writable account at most `--account-unit-limit` (mainnet: 40% of the block,
24M; scaled down here by default so that one payer's ceiling is below what one worker can
do, and the bench takes a minute), both charged with each transaction's requested unit
limit; a competing load of other users' transactions (200,000 units each, at a stated
rate and price, on accounts of their own) takes its share of every block.

For each pool size it records N mint requests for one event at once and runs one worker
until all are confirmed: "1 payer" is the authority paying alone (no pool), k > 1 a pool
of k fee payers with the authority signing read-only. It prints the computed single-payer
ceiling (account limit / units asked per mint, per slot), and per pool size: confirmed
mints/s (first request recorded to last mint confirmed), mints per block at the busiest
block, p50/p99 from request to confirmed, attempts per mint, lamports per mint (fee,
priority fee, rent) and SOL per 100,000 tickets. The database is created and dropped.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
from arq.connections import RedisSettings

from chainworker import services
from chainworker.chain import fees
from chainworker.config import load_settings
from chainworker.db import seed as seed_data
from chainworker.db.migrate import migrate
from chainworker.db.pool import create_pool
from chainworker.jobs.codec import create_arq_pool
from chainworker.jobs.worker import make_worker
from chainworker.localnet.process import start_localnet

sys.path.insert(0, str(Path(__file__).parent))
from worker_throughput import live_count, offer

SOL = 1_000_000_000
COMPETING_UNITS = 200_000


async def one_sale(
    rpc_url: str, server: Any, name: str, redis_url: str, state: Path, tickets: int,
    payers: int, slot_s: float,
) -> dict[str, Any]:
    """Mint `tickets` of one event with a pool of `payers` (1: the authority alone)."""
    queue = f"chainworker:onsale:{uuid.uuid4().hex[:8]}"
    settings = load_settings(
        solana_rpc_urls=rpc_url, state_dir=state, queue_name=queue, metrics_port=0,
        log_level="WARNING", log_format="json",
        fee_payer_count=0 if payers == 1 else payers,
        fee_payer_min_lamports=SOL // 10, fee_payer_top_up_lamports=20 * SOL,
    )
    pool = await create_pool(server.app_dsn(name), settings)
    arq = await create_arq_pool(RedisSettings.from_dsn(redis_url))
    owner = await asyncpg.connect(server.admin_dsn(name))
    try:
        seeded = await seed_data.seed_tenant(owner, tickets=tickets, users=max(2, tickets // 20))
        worker = make_worker(settings, server.app_dsn(name), redis_url)
        running = asyncio.create_task(worker.async_run())
        await until(lambda: _started(worker))
        started = time.monotonic()
        await offer(pool, arq, queue, seeded, None)
        await until(lambda: _none_live(owner))
        elapsed = time.monotonic() - started
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await running
        await worker.close()
        return await figures(owner, seeded.tenant_id, tickets, elapsed, slot_s)
    finally:
        await owner.close()
        await arq.aclose()
        await pool.close()


async def until(check: Callable[[], Awaitable[bool]]) -> None:
    while True:
        if await check():
            return
        await asyncio.sleep(0.1)


async def _started(worker: Any) -> bool:
    return "pipeline" in worker.ctx  # keys, airdrop, the payers' first top-ups done


async def _none_live(conn: asyncpg.Connection) -> bool:
    return await live_count(conn) == 0


async def figures(
    conn: asyncpg.Connection, tenant: uuid.UUID, tickets: int, elapsed: float,
    slot_s: float,
) -> dict[str, Any]:
    latencies = [row["seconds"] for row in await conn.fetch(
        """SELECT extract(epoch FROM completed_at - created_at)::float8 AS seconds
             FROM chain_requests WHERE tenant_id = $1 AND status = 'confirmed'""", tenant)]
    attempts = await conn.fetch(
        """SELECT status, slot, serialized_tx,
                  coalesce((metadata->>'estimated_rent')::bigint, 0) AS rent
             FROM pending_transactions WHERE tenant_id = $1""", tenant)
    landed = [a for a in attempts if a["status"] in ("confirmed", "failed")]
    fee = priority = rent = 0
    limits = []
    for attempt in landed:
        budget = fees.requested_budget(attempt["serialized_tx"])
        assert budget is not None
        limit, price, signatures = budget
        fee += signatures * fees.LAMPORTS_PER_SIGNATURE
        priority += fees.priority_fee(limit or 0, price)
        if attempt["status"] == "confirmed":
            rent += attempt["rent"]
            limits.append(limit or 0)
    per_block = Counter(a["slot"] for a in landed)
    slots = max(per_block) - min(per_block) + 1
    quantiles = statistics.quantiles(latencies, n=100)
    return {
        "confirmed": len(latencies), "seconds": elapsed, "rate": len(latencies) / elapsed,
        "busiest_block": max(per_block.values()), "landing_slots": slots,
        "p50": statistics.median(latencies),
        "p99": quantiles[98], "attempts": len(attempts) / tickets,
        "fee": fee / tickets, "priority": priority / tickets, "rent": rent / tickets,
        "median_limit": statistics.median(limits),
        "landed_rate": len(landed) / (slots * slot_s),
    }


async def run(args: argparse.Namespace, rpc_url: str) -> list[tuple[int, dict[str, Any]]]:
    base = load_settings()
    server, _ = await services.find_postgres_server(base)
    redis = await services.resolve_redis(base)
    name = f"cw_onsale_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(server.admin_dsn("postgres"))
    await admin.execute(f'CREATE DATABASE "{name}"')
    state = Path(tempfile.mkdtemp(prefix="cw-onsale-"))
    results = []
    try:
        await migrate(server.admin_dsn(name))
        for payers in args.payers:
            result = await one_sale(rpc_url, server, name, redis.url, state, args.tickets,
                                    payers, args.slot_ms / 1000)
            results.append((payers, result))
            print(f"  {payers} payer(s): {result['rate']:,.0f} confirmed mints/s", flush=True)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
    return results


def report(args: argparse.Namespace, results: list[tuple[int, dict[str, Any]]]) -> None:
    slot_s = args.slot_ms / 1000
    mainnet = (args.block_unit_limit, args.account_unit_limit) == (60_000_000, 24_000_000)
    units = results[0][1]["median_limit"]
    per_block = args.account_unit_limit // units
    ceiling = per_block / slot_s
    competing_share = min(1.0, args.competing_rate * slot_s * COMPETING_UNITS
                          / args.block_unit_limit)
    print(f"leader: {args.slot_ms} ms slots, block limit {args.block_unit_limit:,} units, "
          f"account limit {args.account_unit_limit:,} units "
          f"({'mainnet' if mainnet else 'scaled down from mainnet 60M / 24M'})")
    print(f"competing load: {args.competing_rate:,} tx/s of {COMPETING_UNITS:,} units at "
          f"{args.competing_price:,} micro-lamports per unit ({competing_share:.0%} of a block)")
    print(f"tickets: {args.tickets:,} of one event, asked at once")
    print(f"single-payer ceiling = account limit / units asked per mint / slot = "
          f"{args.account_unit_limit:,} / {units:,.0f} / {slot_s:g} s = {per_block:,.0f} "
          f"mints per block = {ceiling:,.0f} mints/s")
    print("mints/s: first request recorded to last mint confirmed; landed/s: mints per slot "
          "from the first landing slot to the last")
    print(f"{'payers':>6} {'mints/s':>8} {'landed/s':>8} {'x 1 payer':>9} "
          f"{'busiest block':>13} "
          f"{'p50 s':>6} {'p99 s':>6} {'attempts':>8} {'fee':>7} {'priority':>8} "
          f"{'rent':>9} {'lamports/mint':>13} {'SOL/100k':>9}")
    alone = results[0][1]["rate"]
    for payers, r in results:
        total = r["fee"] + r["priority"] + r["rent"]
        print(f"{payers:>6} {r['rate']:>8,.0f} {r['landed_rate']:>8,.0f} "
              f"{r['rate'] / alone:>9.2f} "
              f"{r['busiest_block']:>13,} {r['p50']:>6.2f} {r['p99']:>6.2f} "
              f"{r['attempts']:>8.2f} {r['fee']:>7,.0f} {r['priority']:>8,.0f} "
              f"{r['rent']:>9,.0f} {total:>13,.0f} {total * 100_000 / SOL:>9,.1f}")
    print(f"1 payer against its ceiling: {alone / ceiling:.2f} end to end, "
          f"{results[0][1]['landed_rate'] / ceiling:.2f} while landing")
    pooled = dict(results)
    if 4 in pooled:
        four = pooled[4]["rate"]
        bound = "the ceiling" if 4 * per_block * results[0][1]["median_limit"] < (
            args.block_unit_limit * (1 - competing_share)) else "the block limit"
        print(f"4 payers: {four / alone:.2f}x one payer (4 payers' ceiling: "
              f"{4 * ceiling:,.0f} mints/s; the block limit leaves room for "
              f"{args.block_unit_limit * (1 - competing_share) / units / slot_s:,.0f}/s; "
              f"binding without the worker: {bound})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tickets", type=int, default=3000)
    parser.add_argument("--slot-ms", type=int, default=400)
    parser.add_argument("--payers", type=lambda text: [int(p) for p in text.split(",")],
                        default=[1, 2, 4, 8])
    parser.add_argument("--block-unit-limit", type=int, default=60_000_000)
    parser.add_argument("--account-unit-limit", type=int, default=2_400_000)
    parser.add_argument("--competing-rate", type=int, default=200)
    parser.add_argument("--competing-price", type=int, default=1_000)
    args = parser.parse_args()
    if args.payers[0] != 1:
        parser.error("--payers must start with 1 (the single-payer baseline)")
    extra = [
        "--block-unit-limit", str(args.block_unit_limit),
        "--account-unit-limit", str(args.account_unit_limit),
        "--competing-rate", str(args.competing_rate),
        "--competing-unit-price", str(args.competing_price),
        "--competing-unit-limit", str(COMPETING_UNITS), "--competing-accounts", "64",
    ]
    started = time.perf_counter()
    with start_localnet(slot_ms=args.slot_ms, extra_args=extra) as node:
        results = asyncio.run(run(args, node.rpc_url))
    report(args, results)
    print(f"({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
