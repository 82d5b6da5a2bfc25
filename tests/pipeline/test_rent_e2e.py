"""Rent that comes back, on the localnet, through the worker's own pipeline.

New mints carry MintCloseAuthority (the platform authority). A burn then closes the mint
and, for a custodial holder, the holder's token account, in the same transaction: their
lamports go back to the payer, and the tenant is credited with exactly those lamports
(a negative spending row) when the burn confirms. An external holder's token account is
left to them. A mint made before this release, without a close authority, burns as it did.
A closed mint's address takes no mint again: the state rules refuse one, and the bytes of
its mint cannot land a second time.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from uuid import UUID

import asyncpg
import pytest
from arq.connections import ArqRedis
from solders.keypair import Keypair
from solders.pubkey import Pubkey

from chainworker.chain import nft, token2022
from chainworker.config import load_settings
from chainworker.db import requests as request_rows
from chainworker.db import seed as seed_data
from chainworker.db.pool import tenant_transaction
from chainworker.db.requests import NewRequest
from chainworker.lifecycle.model import BurnReason, TxOp
from chainworker.localnet.process import LocalnetProcess
from chainworker.pipeline import confirm
from chainworker.pipeline.context import PipelineContext, open_context
from chainworker.pipeline.prepare import Prepared
from chainworker.pipeline.record import Declined, Job, JobOutcome, Skipped, Submitted, record_jobs
from tests.conftest import TestDatabase
from tests.helpers import wait_for
from tests.localnet.helpers import rpc as raw_rpc
from tests.pipeline.pipeline import funded, landed


@pytest.fixture
async def ctx(
    fresh_db: TestDatabase, arq: ArqRedis, localnet_faults: LocalnetProcess, tmp_path: Path
) -> AsyncIterator[PipelineContext]:
    settings = load_settings(solana_rpc_urls=[localnet_faults.rpc_url], state_dir=tmp_path)
    context = await funded(await open_context(settings, fresh_db.app_dsn))
    try:
        yield context
    finally:
        await context.rpc.close()
        await context.pool.close()


async def ask(
    ctx: PipelineContext, tenant: UUID, op: TxOp, tickets: Sequence[UUID],
    reason: BurnReason | None = None,
) -> list[JobOutcome | BaseException]:
    """Record the requests and run their jobs (signed and recorded, not sent)."""
    async with tenant_transaction(ctx.pool, tenant) as conn:
        recorded = await request_rows.record_requests(
            conn, tenant, op, [NewRequest(t, op, reason=reason) for t in tickets], "cli"
        )
    return await record_jobs(ctx, [Job(op, r.request_id, tenant, None) for r in recorded])


async def send_and_settle(
    ctx: PipelineContext, admin: asyncpg.Connection, tenant: UUID,
    outcomes: Sequence[JobOutcome | BaseException],
) -> list[Prepared]:
    prepared = [o.prepared for o in outcomes if isinstance(o, Submitted)]
    for attempt in prepared:
        await ctx.rpc.send_raw(attempt.raw)
    await landed(ctx.rpc, [p.signature for p in prepared])
    await settle(ctx, admin, tenant)
    return prepared


async def settle(ctx: PipelineContext, admin: asyncpg.Connection, tenant: UUID) -> None:
    async def none_live() -> bool:
        await confirm.run_once(ctx)
        return not await admin.fetchval(
            "SELECT count(*) FROM chain_requests WHERE tenant_id = $1"
            " AND status IN ('queued', 'submitted')",
            tenant,
        )

    await wait_for(none_live, 30, "the requests to settle", interval=0.05)


async def test_burns_give_the_rent_back_and_the_tenant_is_credited_with_it(
    ctx: PipelineContext, admin_conn: asyncpg.Connection
) -> None:
    admin = admin_conn
    seeded = await seed_data.seed_tenant(admin, tickets=3, users=3)
    tenant = seeded.tenant_id
    custodial, external, legacy = seeded.ticket_ids
    user_of = {
        row["id"]: row["user_id"]
        for row in await admin.fetch("SELECT id, user_id FROM tickets WHERE tenant_id = $1",
                                     tenant)
    }
    assert len(set(user_of.values())) == 3
    outside = Keypair().pubkey()  # the external holder's own wallet
    await admin.execute(
        "INSERT INTO wallets (tenant_id, user_id, address) VALUES ($1, $2, $3)",
        tenant, user_of[external], str(outside),
    )
    authority = ctx.keys.authority.pubkey()

    # A ticket minted by an earlier release: no close authority.
    legacy_key, legacy_mint = ctx.keys.mint_key(tenant, legacy)
    legacy_wallet = ctx.keys.custodial_wallet(tenant, user_of[legacy])
    old = nft.build_mint(
        authority=ctx.keys.authority, mint=legacy_key, holder=legacy_wallet, name="Old #1",
        symbol="TICKET", uri="", ticket_id=legacy, event_id=seeded.event_id,
        memo="an earlier release", recent_blockhash=(await ctx.rpc.latest_blockhash())[0],
        close_authority=False,
    )
    await ctx.rpc.send_raw(old.raw)
    await send_and_settle(ctx, admin, tenant, await ask(ctx, tenant, TxOp.MINT,
                                                         [custodial, external]))
    await landed(ctx.rpc, [str(old.signature)])
    await admin.execute(
        "UPDATE tickets SET status = 'minted', token_mint = $2, wallet_address = $3"
        " WHERE id = $1",
        legacy, str(legacy_mint), str(legacy_wallet),
    )

    mint_of = {
        row["id"]: Pubkey.from_string(row["token_mint"])
        for row in await admin.fetch("SELECT id, token_mint FROM tickets WHERE tenant_id = $1",
                                     tenant)
    }
    for ticket in (custodial, external):
        state = await ctx.rpc.get_mint_state(mint_of[ticket])
        assert state is not None and state.close_authority == authority
    state = await ctx.rpc.get_mint_state(mint_of[legacy])
    assert state is not None and state.close_authority is None and state.supply == 1
    holder_of = {
        custodial: ctx.keys.custodial_wallet(tenant, user_of[custodial]),
        external: outside,
        legacy: legacy_wallet,
    }
    account_of = {t: nft.holder_token_account(holder_of[t], mint_of[t]) for t in mint_of}
    lamports = {
        address: view.lamports
        for address, view in zip(
            [*mint_of.values(), *account_of.values()],
            await ctx.rpc.get_accounts([*mint_of.values(), *account_of.values()]),
            strict=True,
        )
        if view is not None
    }
    assert len(lamports) == 6

    # The plain burn first: its units are simulated first, and must not be cached for the
    # burns that close accounts (they use some 3,300 units more).
    burns = await ask(ctx, tenant, TxOp.BURN, [legacy, custodial, external], BurnReason.REFUND)
    again = await ask(ctx, tenant, TxOp.BURN, [custodial], BurnReason.REFUND)  # asked twice
    assert isinstance(again[0], Skipped)  # the same request, already submitted
    before = await ctx.rpc.get_balance(authority)  # the authority pays: no pool here
    sent = await send_and_settle(ctx, admin, tenant, burns)
    assert len(sent) == 3
    after = await ctx.rpc.get_balance(authority)

    # On chain: the custodial ticket's mint and account are gone; the external holder's
    # account stays (empty); the earlier release's mint stays, at supply 0.
    assert await ctx.rpc.get_account(mint_of[custodial]) is None
    assert await ctx.rpc.get_account(account_of[custodial]) is None
    assert await ctx.rpc.get_account(mint_of[external]) is None
    left = await ctx.rpc.get_account(account_of[external])
    assert left is not None and left.lamports == lamports[account_of[external]]
    assert token2022.parse_token_account(left.data).amount == 0
    state = await ctx.rpc.get_mint_state(mint_of[legacy])
    assert state is not None and state.supply == 0
    assert await ctx.rpc.get_account(account_of[legacy]) is not None

    returned = {
        custodial: lamports[mint_of[custodial]] + lamports[account_of[custodial]],
        external: lamports[mint_of[external]],
    }
    fees = 0
    for attempt in sent:
        landed_tx = await ctx.rpc.get_transaction(attempt.signature)
        assert landed_tx is not None and landed_tx.err is None and landed_tx.fee is not None
        fees += landed_tx.fee
    assert after - before == sum(returned.values()) - fees  # what the payer got back

    credits = await admin.fetch(
        """SELECT p.ticket_id, p.tx_signature, s.amount, s.user_id, s.currency
             FROM spending_transactions s JOIN pending_transactions p ON p.id = s.reference_id
            WHERE s.tenant_id = $1 AND s.reference_type = 'rent_reclaimed'""",
        tenant,
    )
    assert {row["ticket_id"]: -row["amount"] for row in credits} == returned
    assert {(row["user_id"], row["currency"]) for row in credits} == {(None, "LAM")}
    assert {row["tx_signature"] for row in credits} <= {p.signature for p in sent}
    assert await admin.fetchval(
        "SELECT count(*) FROM pending_transactions WHERE tenant_id = $1 AND tx_type = 'burn'",
        tenant,
    ) == 3
    statuses = await admin.fetch(
        "SELECT operation, status, count(*) FROM chain_requests WHERE tenant_id = $1"
        " GROUP BY 1, 2",
        tenant,
    )
    assert {(r["operation"], r["status"]): r["count"] for r in statuses} == {
        ("mint", "confirmed"): 2, ("burn", "confirmed"): 3,
    }
    assert {
        row["status"]
        for row in await admin.fetch("SELECT status FROM tickets WHERE tenant_id = $1", tenant)
    } == {"refunded"}
    # The day's total is every charge less the credits.
    day = await admin.fetchval(
        "SELECT spent FROM chainworker_spend_totals WHERE tenant_id = $1 AND period = 'day'",
        tenant,
    )
    assert day == await admin.fetchval(
        "SELECT sum(amount) FROM spending_transactions WHERE tenant_id = $1", tenant
    )


async def test_a_closed_mint_address_takes_no_mint_again(
    ctx: PipelineContext, admin_conn: asyncpg.Connection, localnet_faults: LocalnetProcess
) -> None:
    admin = admin_conn
    seeded = await seed_data.seed_tenant(admin, tickets=1, users=1)
    tenant, ticket = seeded.tenant_id, seeded.ticket_ids[0]
    await send_and_settle(ctx, admin, tenant, await ask(ctx, tenant, TxOp.MINT, [ticket]))
    minted = await admin.fetchrow(
        "SELECT serialized_tx, tx_signature, blockhash, slot FROM pending_transactions"
        " WHERE ticket_id = $1 AND tx_type = 'mint' AND status = 'confirmed'",
        ticket,
    )
    await send_and_settle(ctx, admin, tenant,
                          await ask(ctx, tenant, TxOp.BURN, [ticket], BurnReason.REVOKE))
    mint = ctx.keys.mint_address(tenant, ticket)
    assert await ctx.rpc.get_account(mint) is None  # closed: the address is free

    # (a) The state rules: the ticket is revoked and keeps its token_mint.
    [refused] = await ask(ctx, tenant, TxOp.MINT, [ticket])
    assert isinstance(refused, Declined) and refused.refusal.code == "already_minted"

    # (b) The mint's own signed bytes: while its blockhash is valid the signature is
    # already processed; after, the blockhash is unknown. Either way it never lands again.
    url, raw = localnet_faults.rpc_url, base64.b64encode(minted["serialized_tx"]).decode()

    async def preflight() -> str:
        answer = await raw_rpc(url, "sendTransaction", [
            raw, {"encoding": "base64", "preflightCommitment": "confirmed"},
        ])
        return str(answer["error"]["data"]["err"])

    valid = (await raw_rpc(url, "isBlockhashValid", [
        minted["blockhash"], {"commitment": "confirmed"},
    ]))["result"]["value"]
    assert await preflight() == ("AlreadyProcessed" if valid else "BlockhashNotFound")
    await ctx.rpc.send_raw(minted["serialized_tx"])  # no preflight: taken, never executed
    localnet_faults.set_faults(warp_slots=200)  # far past its blockhash's last valid height
    assert await preflight() == "BlockhashNotFound"
    await ctx.rpc.send_raw(minted["serialized_tx"])
    localnet_faults.set_faults(warp_slots=3)
    assert await ctx.rpc.get_account(mint) is None
    [status] = await ctx.rpc.signature_statuses([minted["tx_signature"]])
    assert status is not None and status.slot == minted["slot"]  # its one landing
