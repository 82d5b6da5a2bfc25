"""One bad row or answer never stops the confirmation loop.

Each kind of poison sits in the same round as good, landed attempts of another tenant: a
row whose signature is not a signature (written through the seed's own
create_pending_transaction), an endpoint whose status answers carry slots of 2**63, a row
whose outcome the database refuses. The good rows settle in that same round; the poison is
set aside with its reason, counted, and never claimed again. The landed attempts of a
round settle a chunk per transaction, so that no one transaction holds them all.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
from arq.connections import ArqRedis
from solders.signature import Signature

from chainworker.config import load_settings
from chainworker.db import seed as seed_data
from chainworker.jobs.enqueue import drop_queue
from chainworker.jobs.queue import ArqQueue
from chainworker.localnet.process import LocalnetProcess
from chainworker.obs import metrics
from chainworker.pipeline import confirm, sweep
from chainworker.pipeline.context import PipelineContext, open_context
from tests.conftest import TestDatabase, own_queue_name
from tests.pipeline.pipeline import funded, landed, submitted_mints


def _quarantined(reason: str) -> float:
    value = metrics.REGISTRY.get_sample_value(
        "chainworker_quarantined_total", {"kind": "transaction", "reason": reason}
    )
    return value or 0.0


async def _context(db: TestDatabase, arq: ArqRedis, urls: list[str], tmp: Path) -> PipelineContext:
    settings = load_settings(solana_rpc_urls=urls, state_dir=tmp / "state")
    return await funded(await open_context(settings, db.app_dsn))


@pytest.fixture
async def ctx(
    fresh_db: TestDatabase, arq: ArqRedis, localnet: LocalnetProcess, tmp_path: Path
) -> AsyncIterator[PipelineContext]:
    context = await _context(fresh_db, arq, [localnet.rpc_url], tmp_path)
    try:
        yield context
    finally:
        await context.rpc.close()
        await context.pool.close()


async def _confirmed(admin: asyncpg.Connection, tenant: object) -> int:
    return int(await admin.fetchval(
        "SELECT count(*) FROM chain_requests WHERE tenant_id = $1 AND status = 'confirmed'",
        tenant,
    ))


async def test_rows_that_are_not_transactions_are_set_aside(
    ctx: PipelineContext, admin_conn: asyncpg.Connection
) -> None:
    good_tenant, good = await submitted_mints(ctx, admin_conn, 3)
    await landed(ctx.rpc, [p.signature for p in good])
    bad_tenant, bad = await submitted_mints(ctx, admin_conn, 1)
    # The seed's own function takes any text as a signature and any type of transaction.
    poison = await admin_conn.fetch(
        """SELECT create_pending_transaction($1, 'not-a-signature', 'mint',
                                             p_last_valid_block_height => 10),
                  create_pending_transaction($1, $2, 'verify',
                                             p_last_valid_block_height => 10)""",
        bad_tenant, str(Signature(secrets.token_bytes(64))),
    )
    poison_ids = list(poison[0].values())
    before = _quarantined("bad_row")

    await confirm.run_once(ctx)

    assert await _confirmed(admin_conn, good_tenant) == 3  # in the same round
    rows = await admin_conn.fetch(
        "SELECT status, quarantined_at, last_error FROM pending_transactions"
        " WHERE id = ANY($1::uuid[]) ORDER BY tx_type",
        poison_ids,
    )
    assert [r["status"] for r in rows] == ["pending", "pending"]  # still live: may land
    assert all(r["quarantined_at"] for r in rows)
    assert "not a transaction signature" in rows[0]["last_error"]
    # Every operation of the seed's is carried out now: a verify without its request is a
    # row that does not make sense.
    assert "names no request or no ticket" in rows[1]["last_error"]
    assert _quarantined("bad_row") - before == 2
    # The bad tenant's own good attempt is not held up either.
    await landed(ctx.rpc, [bad[0].signature])
    await confirm.run_once(ctx)
    assert await _confirmed(admin_conn, bad_tenant) == 1
    claimed = await admin_conn.fetchval(
        "SELECT count(*) FROM pending_transactions WHERE id = ANY($1::uuid[])"
        " AND lease_owner IS NOT NULL",
        poison_ids,
    )
    assert claimed == 0, "quarantined rows are never claimed again"


async def test_an_endpoint_answering_slot_2_63_is_not_believed(
    fresh_db: TestDatabase, arq: ArqRedis, localnet_endpoints_faults: LocalnetProcess,
    admin_conn: asyncpg.Connection, tmp_path: Path,
) -> None:
    hostile, honest, _ = localnet_endpoints_faults.rpc_urls
    localnet_endpoints_faults.set_faults(
        endpoint=0, garbage_rate=1.0, garbage_kinds=["huge_integers"],
        garbage_methods=["getSignatureStatuses"],
    )
    ctx = await _context(fresh_db, arq, [hostile, honest], tmp_path)
    try:
        tenant, sent = await submitted_mints(ctx, admin_conn, 3)
        await landed(ctx.rpc, [p.signature for p in sent])  # retried past the garbage
        await confirm.run_once(ctx)
        assert await _confirmed(admin_conn, tenant) == 3
        slots = await admin_conn.fetch(
            "SELECT slot FROM pending_transactions WHERE tenant_id = $1", tenant
        )
        assert all(0 < row["slot"] < 2**40 for row in slots)
    finally:
        await ctx.rpc.close()
        await ctx.pool.close()


async def test_a_row_whose_outcome_is_refused_is_set_aside_alone(
    ctx: PipelineContext, admin_conn: asyncpg.Connection
) -> None:
    tenant, sent = await submitted_mints(ctx, admin_conn, 4)
    await landed(ctx.rpc, [p.signature for p in sent])
    refused = await admin_conn.fetchval(
        "SELECT ticket_id FROM pending_transactions WHERE id = $1", sent[0].tx_id
    )
    # Something in the ticket service's schema refuses this one ticket's update.
    await admin_conn.execute(
        f"""CREATE FUNCTION refuse_one() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN RAISE EXCEPTION 'refused by the ticket service' USING ERRCODE = 'P0001'; END $$;
            CREATE TRIGGER refuse_one BEFORE UPDATE ON tickets FOR EACH ROW
                WHEN (OLD.id = '{refused}') EXECUTE FUNCTION refuse_one()"""
    )
    before = _quarantined("unhandled")

    await confirm.run_once(ctx)

    assert await _confirmed(admin_conn, tenant) == 3  # the others, same tenant, same round
    row = await admin_conn.fetchrow(
        "SELECT status, quarantined_at, last_error FROM pending_transactions WHERE id = $1",
        sent[0].tx_id,
    )
    assert row["status"] == "pending" and row["quarantined_at"]
    assert "refused by the ticket service" in row["last_error"]
    assert _quarantined("unhandled") - before == 1


@pytest.mark.parametrize(
    "sqlstate",
    ["53100", "53200", "53300", "57P02", "58030", "25006", "40001"],
    ids=["disk-full", "out-of-memory", "too-many-connections", "crash-shutdown", "io-error",
         "read-only-after-failover", "serialization"],
)
async def test_a_database_that_cannot_answer_now_sets_nothing_aside(
    ctx: PipelineContext, admin_conn: asyncpg.Connection, sqlstate: str
) -> None:
    """A full disk, a server out of connection slots or memory, a crash, a standby after a
    failover: the database's fault, not the rows'. Nothing is quarantined; the round is
    tried again and settles everything once the database answers."""
    tenant, sent = await submitted_mints(ctx, admin_conn, 2)
    await landed(ctx.rpc, [p.signature for p in sent])
    await admin_conn.execute(
        f"""CREATE FUNCTION not_now() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN RAISE EXCEPTION 'the database cannot answer now'
                USING ERRCODE = '{sqlstate}'; END $$;
            CREATE TRIGGER not_now BEFORE UPDATE ON tickets
                FOR EACH ROW EXECUTE FUNCTION not_now()"""
    )
    before = _quarantined("unhandled")

    await confirm.run_once(ctx)

    assert await _confirmed(admin_conn, tenant) == 0
    assert await admin_conn.fetchval(
        "SELECT count(*) FROM pending_transactions WHERE quarantined_at IS NOT NULL"
    ) == 0
    assert _quarantined("unhandled") == before
    await admin_conn.execute("DROP TRIGGER not_now ON tickets")
    await confirm.run_once(ctx)
    assert await _confirmed(admin_conn, tenant) == 2


async def test_the_sweeper_leaves_out_a_request_no_job_can_run(
    ctx: PipelineContext, admin_conn: asyncpg.Connection, arq: ArqRedis
) -> None:
    """Its table forbids such a row; with that check gone (a schema someone changed), one bad
    row still does not stop the sweep: the good stale requests are queued again."""
    seeded = await seed_data.seed_tenant(admin_conn, tickets=3)
    await admin_conn.execute(
        "ALTER TABLE chain_requests DROP CONSTRAINT chk_chain_requests_operation"
    )
    await admin_conn.executemany(
        """INSERT INTO chain_requests (tenant_id, ticket_id, operation, enqueued_at)
           VALUES ($1, $2, $3, now() - interval '1 hour')""",
        [(seeded.tenant_id, seeded.ticket_ids[0], "teleport"),
         *((seeded.tenant_id, t, "mint") for t in seeded.ticket_ids[1:])],
    )
    ctx.settings = ctx.settings.model_copy(update={"queue_name": own_queue_name("sweep")})
    try:
        assert await sweep.sweep_once(ctx, ArqQueue(arq, ctx.settings.queue_name)) == 2
        assert await arq.zcard(ctx.settings.queue_name) == 2
    finally:
        await drop_queue(arq, ctx.settings.queue_name)


async def test_a_rounds_landed_attempts_settle_in_transactions_of_a_chunk_each(
    ctx: PipelineContext, admin_conn: asyncpg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A round's thousands in one transaction were one backend's work, and none was
    confirmed until the last was: each chunk commits on its own (confirmed_at is the
    moment its transaction began)."""
    monkeypatch.setattr(confirm, "SETTLE_CHUNK", 2)
    tenant, mints = await submitted_mints(ctx, admin_conn, 5)
    await landed(ctx.rpc, [p.signature for p in mints])

    await confirm.run_once(ctx)

    assert await _confirmed(admin_conn, tenant) == 5
    chunks = await admin_conn.fetch(
        "SELECT count(*) AS n FROM pending_transactions WHERE tenant_id = $1"
        " AND status = 'confirmed' GROUP BY confirmed_at ORDER BY n DESC",
        tenant,
    )
    assert [row["n"] for row in chunks] == [2, 2, 1]
