"""Expiry and settlement trust nothing stale.

- settle() acts only on the state its decision was made from, under its own lease: a round
  that outlived its lease, or a decision read before another worker saw the transaction
  land, changes nothing;
- reconcile --apply takes the confirmation loop's lease, so it never acts on a row a worker
  holds;
- two confirmation loops and a reconcile racing on the same rows settle each attempt once;
- the height and the statuses that decide a row come from one endpoint: a lagging one whose
  height answer is garbage cannot make a landed attempt look expired.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from uuid import UUID

import asyncpg
import pytest
from arq.connections import ArqRedis

from chainworker.config import load_settings
from chainworker.db import live_transactions
from chainworker.db.live_transactions import LiveAttempt
from chainworker.lifecycle import decide
from chainworker.lifecycle.model import Commitment, Policy
from chainworker.localnet.process import LocalnetProcess
from chainworker.ops import reconcile
from chainworker.pipeline import confirm
from chainworker.pipeline.context import PipelineContext, open_context
from tests.conftest import TestDatabase
from tests.pipeline.pipeline import attempt_states, funded, landed, submitted_mints


async def _context(
    db: TestDatabase, arq: ArqRedis, urls: list[str], tmp: Path, name: str, **settings: object
) -> PipelineContext:
    loaded = load_settings(solana_rpc_urls=urls, state_dir=tmp / "state", **settings)
    context = await funded(await open_context(loaded, db.app_dsn))
    context.worker_id = name
    return context


async def _close(*contexts: PipelineContext) -> None:
    for context in contexts:
        await context.rpc.close()
        await context.pool.close()


@pytest.fixture
async def pair(
    fresh_db: TestDatabase, arq: ArqRedis, localnet_faults: LocalnetProcess, tmp_path: Path
) -> AsyncIterator[tuple[PipelineContext, PipelineContext]]:
    a = await _context(fresh_db, arq, [localnet_faults.rpc_url], tmp_path, "worker-a")
    b = await _context(fresh_db, arq, [localnet_faults.rpc_url], tmp_path, "worker-b")
    try:
        yield a, b
    finally:
        await _close(a, b)


async def _claim(ctx: PipelineContext) -> list[LiveAttempt]:
    async with ctx.pool.acquire() as conn:
        rows = await live_transactions.claim_live(conn, ctx.worker_id, 100, confirm.LEASE_SECONDS)
    return [row for row in rows if isinstance(row, LiveAttempt)]


async def _expired_rows(
    ctx: PipelineContext, admin: asyncpg.Connection, localnet: LocalnetProcess, count: int
) -> UUID:
    """`count` mint attempts that never landed, past their blockhash, marked once unknown:
    the next unknown read makes their replacement certain."""
    localnet.set_faults(drop_rate=1.0)
    tenant, _ = await submitted_mints(ctx, admin, count)
    await admin.execute(
        """UPDATE pending_transactions SET last_valid_block_height = 1,
                  expiry_check_pending = true WHERE tenant_id = $1""",
        tenant,
    )
    return tenant


async def test_settle_acts_only_on_the_state_and_lease_it_read(
    pair: tuple[PipelineContext, PipelineContext], admin_conn: asyncpg.Connection,
    localnet_faults: LocalnetProcess,
) -> None:
    a, b = pair
    tenant = await _expired_rows(a, admin_conn, localnet_faults, 3)
    seen_landing, lost_lease, unchanged = await _claim(a)
    height = await a.rpc.block_height()

    # Another worker saw one land meanwhile (below the target commitment).
    await admin_conn.execute(
        "UPDATE pending_transactions SET status = 'confirming', expiry_check_pending = false"
        " WHERE id = $1", seen_landing.id,
    )
    # The round outlived its lease on another: worker b holds it now.
    await admin_conn.execute(
        "UPDATE pending_transactions SET lease_owner = $2, lease_until = now() + interval '1m'"
        " WHERE id = $1", lost_lease.id, b.worker_id,
    )
    for row in (seen_landing, lost_lease, unchanged):
        await confirm.settle(a, row, decide.Replace(next_attempt=2), height)

    states = {
        row["id"]: (row["status"], row["children"])
        for row in await admin_conn.fetch(
            """SELECT p.id, p.status,
                      (SELECT count(*) FROM pending_transactions c WHERE c.parent_tx_id = p.id)
                          AS children
                 FROM pending_transactions p WHERE p.tenant_id = $1 AND p.attempt = 1""",
            tenant,
        )
    }
    assert states[seen_landing.id] == ("confirming", 0)
    assert states[lost_lease.id] == ("pending", 0)
    assert states[unchanged.id] == ("replaced", 1)  # the one still as it was read


async def test_reconcile_takes_the_loops_lease(
    pair: tuple[PipelineContext, PipelineContext], admin_conn: asyncpg.Connection,
    localnet_faults: LocalnetProcess,
) -> None:
    a, _ = pair
    tenant = await _expired_rows(a, admin_conn, localnet_faults, 2)
    held, free = await _claim(a)  # worker a holds both leases
    await admin_conn.execute(
        "UPDATE pending_transactions SET lease_until = now() - interval '1s' WHERE id = $1",
        free.id,
    )  # ...and lets one run out
    report = await reconcile.scan(
        a.pool, a.rpc, Policy(max_retries=3), reconcile.ScanOptions(older_than_seconds=0),
        commitment=Commitment.CONFIRMED,
    )
    assert {f.verdict.value for f in report.findings} == {"retry"}
    applied = await reconcile.apply(a, report)
    outcome = {f.row.id: (f.applied, f.error) for f in applied.findings}
    assert outcome[free.id] == ("replaced", None)
    assert outcome[held.id][0] is None and "leased by a worker" in (outcome[held.id][1] or "")
    assert sorted(await attempt_states(admin_conn, tenant)) == sorted(
        [("pending", 1), ("replaced", 1), ("pending", 2)]
    )


async def test_two_loops_and_a_reconcile_racing_settle_each_attempt_once(
    pair: tuple[PipelineContext, PipelineContext], admin_conn: asyncpg.Connection,
    localnet_faults: LocalnetProcess,
) -> None:
    a, b = pair
    tenant = await _expired_rows(a, admin_conn, localnet_faults, 12)
    for _ in range(3):
        # Leases run out between rounds, so each round's claims overlap with the others'.
        await admin_conn.execute(
            "UPDATE pending_transactions SET lease_until = now() - interval '1s'"
            " WHERE tenant_id = $1", tenant,
        )
        scanned = await reconcile.scan(
            a.pool, a.rpc, Policy(max_retries=3), reconcile.ScanOptions(older_than_seconds=0),
            commitment=Commitment.CONFIRMED,
        )
        await asyncio.gather(confirm.run_once(a), confirm.run_once(b), reconcile.apply(a, scanned))
    rows = await admin_conn.fetch(
        """SELECT r.id, array_agg(p.attempt ORDER BY p.attempt) AS attempts,
                  count(*) FILTER (WHERE p.status IN ('pending', 'confirming')) AS live,
                  max(c.children) AS most_children
             FROM chain_requests r
             JOIN pending_transactions p ON p.request_id = r.id
             CROSS JOIN LATERAL (SELECT count(*) AS children FROM pending_transactions k
                                  WHERE k.parent_tx_id = p.id) c
            WHERE r.tenant_id = $1 GROUP BY r.id""",
        tenant,
    )
    assert len(rows) == 12
    for row in rows:
        assert row["attempts"] == list(range(1, len(row["attempts"]) + 1)), row
        assert row["live"] <= 1 and row["most_children"] <= 1, row


async def test_a_lagging_endpoint_with_a_garbage_height_cannot_expire_a_landed_attempt(
    fresh_db: TestDatabase, arq: ArqRedis, localnet_endpoints_faults: LocalnetProcess,
    admin_conn: asyncpg.Connection, tmp_path: Path,
) -> None:
    lagging, honest, _ = localnet_endpoints_faults.rpc_urls
    ctx = await _context(fresh_db, arq, [honest], tmp_path, "setup")
    try:
        tenant, sent = await submitted_mints(ctx, admin_conn, 2)
        await landed(ctx.rpc, [p.signature for p in sent])
    finally:
        await _close(ctx)
    # The rows say their blockhash is long past, and one unknown read was already seen.
    await admin_conn.execute(
        """UPDATE pending_transactions SET last_valid_block_height = 1,
                  expiry_check_pending = true WHERE tenant_id = $1""",
        tenant,
    )
    loop = await _context(fresh_db, arq, [lagging, honest], tmp_path, "loop")
    try:
        # The first endpoint lags behind the landing and answers garbage heights.
        localnet_endpoints_faults.set_faults(
            endpoint=0, lag_slots=100, garbage_rate=1.0, garbage_kinds=["huge_integers"],
            garbage_methods=["getBlockHeight"],
        )
        await confirm.run_once(loop)
    finally:
        await _close(loop)
    assert sorted(await attempt_states(admin_conn, tenant)) == [("confirmed", 1)] * 2
