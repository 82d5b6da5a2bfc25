"""The scan underneath `chainworker reconcile`: keyset pages through the cross-tenant
function, filters, limits, and two status reads before an expiry verdict."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import asyncpg
import pytest
from solders.keypair import Keypair
from solders.signature import Signature

from chainworker.chain.rpc import SolanaRpc
from chainworker.db.reconcile import MintedTicket
from chainworker.db.seed import seed_tenant
from chainworker.lifecycle.model import Commitment, Policy
from chainworker.localnet.process import LocalnetProcess
from chainworker.ops import reconcile
from chainworker.ops.reconcile_cli import parse_duration
from chainworker.ops.reconcile_cli_run import UsageError
from chainworker.ops.reconcile_holders import check_ticket
from tests.conftest import TestDatabase

FAR_HEIGHT = 2**40


async def _insert_live(
    admin: asyncpg.Connection, tenant: UUID, tickets: list[UUID], *, op: str,
    age_minutes: float, last_valid: int,
) -> list[UUID]:
    submitted = datetime.now(UTC) - timedelta(minutes=age_minutes)
    records = [
        (uuid.uuid4(), tenant, ticket, op, "pending", "11111111111111111111111111111111",
         last_valid, str(Signature(secrets.token_bytes(64))), submitted, submitted)
        for ticket in tickets
    ]
    await admin.copy_records_to_table(
        "pending_transactions", records=records,
        columns=["id", "tenant_id", "ticket_id", "tx_type", "status", "blockhash",
                 "last_valid_block_height", "tx_signature", "submitted_at", "last_sent_at"],
    )
    return [r[0] for r in records]


@pytest.fixture
async def pools(fresh_db: TestDatabase) -> AsyncIterator[tuple[asyncpg.Pool, asyncpg.Connection]]:
    pool = await asyncpg.create_pool(fresh_db.app_dsn, min_size=1, max_size=4)
    admin = await asyncpg.connect(fresh_db.admin_dsn)
    assert pool is not None
    try:
        yield pool, admin
    finally:
        await admin.close()
        await pool.close()


async def test_pages_stream_every_selected_row_once(
    pools: tuple[asyncpg.Pool, asyncpg.Connection],
) -> None:
    pool, admin = pools
    a = await seed_tenant(admin, tickets=9, tenant_name="A")
    b = await seed_tenant(admin, tickets=3, tenant_name="B")
    old_mints = await _insert_live(admin, a.tenant_id, a.ticket_ids[:7], op="mint",
                                   age_minutes=10, last_valid=FAR_HEIGHT)
    old_burns = await _insert_live(admin, a.tenant_id, a.ticket_ids[7:8], op="burn",
                                   age_minutes=10, last_valid=FAR_HEIGHT)
    await _insert_live(admin, a.tenant_id, a.ticket_ids[8:], op="mint", age_minutes=0,
                       last_valid=FAR_HEIGHT)
    other = await _insert_live(admin, b.tenant_id, b.ticket_ids, op="mint", age_minutes=10,
                               last_valid=FAR_HEIGHT)

    async def ids(**options: Any) -> list[UUID]:
        scan = reconcile.ScanOptions(page_size=3, **options)
        pages = [page async for page in reconcile.live_pages(pool, scan)]
        assert all(len(page) <= 3 for page in pages)
        return [row.id for page in pages for row in page]

    everything = await ids(older_than_seconds=60)
    assert sorted(everything) == sorted(old_mints + old_burns + other)
    assert len(set(everything)) == len(everything)
    assert sorted(await ids(older_than_seconds=60, tenant_id=b.tenant_id)) == sorted(other)
    assert await ids(older_than_seconds=60, op="burn") == old_burns
    assert len(await ids(older_than_seconds=60, limit=5)) == 5
    assert len(await ids(older_than_seconds=0)) == 12


async def test_expiry_needs_two_unknown_reads_past_the_height(
    pools: tuple[asyncpg.Pool, asyncpg.Connection], localnet_faults: LocalnetProcess,
) -> None:
    pool, admin = pools
    seeded = await seed_tenant(admin, tickets=4)
    localnet_faults.set_faults(warp_slots=5)
    expired = await _insert_live(admin, seeded.tenant_id, seeded.ticket_ids[:2], op="mint",
                                 age_minutes=5, last_valid=0)
    valid = await _insert_live(admin, seeded.tenant_id, seeded.ticket_ids[2:], op="mint",
                               age_minutes=5, last_valid=FAR_HEIGHT)
    async with SolanaRpc([localnet_faults.rpc_url]) as rpc:
        report = await reconcile.scan(
            pool, rpc, Policy(max_retries=3), reconcile.ScanOptions(older_than_seconds=60),
            commitment=Commitment.CONFIRMED,
        )
    by_id = {f.row.id: f for f in report.findings}
    assert {by_id[i].verdict for i in expired} == {reconcile.ReconcileVerdict.RETRY}
    # The verdict used the second read: the attempt carries the expiry mark it set.
    assert all(by_id[i].decision.tx.expiry_check_pending for i in expired)
    assert {by_id[i].verdict for i in valid} == {reconcile.ReconcileVerdict.WAIT}
    assert report.summary()["by_verdict"]["retry"] == 2


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90s", 90), ("2m", 120), ("1h30m", 5400), ("500ms", 0.5), ("120", 120), ("0s", 0)],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["2x", "", "m", "-5s", "1.5.2s", "2 m"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(UsageError):
        parse_duration(text)


@pytest.mark.parametrize(("status", "drift"), [("refunded", None), ("revoked", None),
                                               ("minted", "mint_missing")])
async def test_a_burned_tickets_closed_mint_is_no_drift(
    localnet: LocalnetProcess, status: str, drift: str | None
) -> None:
    closed = str(Keypair().pubkey())  # no account there: what a burn that closed leaves
    ticket = MintedTicket(uuid.uuid4(), uuid.uuid4(), closed, status, uuid.uuid4(), None, None)
    async with SolanaRpc([localnet.rpc_url]) as rpc:
        found = await check_ticket(rpc, ticket, None, {})
    assert (found.kind if found else None) == drift
