"""Reconcile at scale: a dry run over N live transactions, in rows per second.

Run: python bench/reconcile_scale.py [--rows 100000] [--expired-share 0.5]

Creates a fresh database on the machine's PostgreSQL (or the embedded one), migrates
it, inserts N sold tickets and one live `pending_transactions` row each with a random
signature (a share of them past their last valid block height, so they take the
second status read expiry needs), starts a localnet, and runs
`chainworker reconcile --older-than 1m --json` against them, end to end. The
database is dropped afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
from solders.signature import Signature

from chainworker import services
from chainworker.config import load_settings
from chainworker.db.seed import seed_tenant
from chainworker.localnet.process import start_localnet
from scratch import scratch_database

BLOCKHASH = "11111111111111111111111111111111"


async def fill(server: services.PgServer, name: str, rows: int, expired_share: float) -> None:
    settings = load_settings()
    pool = await asyncpg.create_pool(server.app_dsn(name), min_size=1, max_size=2)
    assert pool is not None
    try:
        owner = await asyncpg.connect(server.admin_dsn(name))  # the ticket service's data
        try:
            seeded = await seed_tenant(owner, tickets=rows, users=100, tenant_name="Bench")
        finally:
            await owner.close()
    finally:
        await pool.close()
    expired = int(rows * expired_share)
    submitted = datetime.now(UTC) - timedelta(minutes=10)
    records = [
        (
            uuid.uuid4(), seeded.tenant_id, ticket, "mint", "pending", BLOCKHASH,
            0 if i < expired else 2**40, str(Signature(secrets.token_bytes(64))),
            settings.max_retries, submitted, submitted,
        )
        for i, ticket in enumerate(seeded.ticket_ids)
    ]
    conn = await asyncpg.connect(server.admin_dsn(name))
    try:
        await conn.copy_records_to_table(
            "pending_transactions", records=records,
            columns=["id", "tenant_id", "ticket_id", "tx_type", "status", "blockhash",
                     "last_valid_block_height", "tx_signature", "max_retries",
                     "submitted_at", "last_sent_at"],
        )
        await conn.execute("ANALYZE pending_transactions")
    finally:
        await conn.close()


def run_reconcile(dsn: str, rpc_url: str, state_dir: Path) -> tuple[dict[str, object], float]:
    env = {
        **os.environ, "DATABASE_URL": dsn, "SOLANA_RPC_URLS": rpc_url,
        "STATE_DIR": str(state_dir), "LOG_LEVEL": "WARNING",
    }
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "chainworker", "reconcile", "--older-than", "1m", "--json"],
        env=env, capture_output=True, text=True, timeout=600,
    )
    wall = time.perf_counter() - started
    if result.returncode not in (0, 1):
        raise SystemExit(f"reconcile failed ({result.returncode}): {result.stderr.strip()}")
    summary: dict[str, object] = json.loads(result.stdout)["summary"]
    return summary, wall


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--expired-share", type=float, default=0.5)
    args = parser.parse_args()

    async with scratch_database() as (server, name, origin):
        started = time.perf_counter()
        await fill(server, name, args.rows, args.expired_share)
        print(f"{origin} PostgreSQL: {args.rows:,} tickets and live rows inserted in "
              f"{time.perf_counter() - started:.1f}s")
        with start_localnet(slot_ms=400) as node, tempfile.TemporaryDirectory() as state:
            node.set_faults(warp_slots=200)  # past the expired rows' last valid height
            summary, wall = run_reconcile(server.app_dsn(name), node.rpc_url, Path(state))
        scanned = int(str(summary["scanned"]))
        scan_seconds = float(str(summary["seconds"]))
        print(f"verdicts: {summary['by_verdict']}")
        rate = scanned / scan_seconds
        print(f"scan: {scanned:,} rows in {scan_seconds:.2f}s = {rate:,.0f} rows/s")
        print(f"end to end (process start, scan, JSON out): {wall:.2f}s = "
              f"{scanned / wall:,.0f} rows/s")


if __name__ == "__main__":
    asyncio.run(main())
