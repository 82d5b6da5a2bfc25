"""The unit limit asked for: close to what a transaction uses, never less, on the localnet.

A kind of transaction is simulated once; the address search of the holder's token
account (1,500 units per bump tried) is counted for each transaction. A transfer to a
holder whose account exists uses some 13,000 units less than one that creates it: it is
simulated for itself and never fills the cache, so transfers that create an account are
never given its limit (they would fail on chain for want of units).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, cast
from uuid import uuid4

import pytest
from solders.keypair import Keypair
from solders.pubkey import Pubkey

from chainworker.chain import metadata, nft
from chainworker.chain.rpc import SolanaRpc
from chainworker.config import Settings
from chainworker.db.tickets import TicketRow
from chainworker.lifecycle.metadata import check_change
from chainworker.lifecycle.model import TxOp
from chainworker.localnet.process import LocalnetProcess
from chainworker.pipeline.build import Draft, build_attempt
from chainworker.pipeline.context import Keys, PipelineContext, policy_of
from chainworker.pipeline.fees import ADDRESS_SEARCH_STEP_UNITS, compute_budget
from chainworker.pipeline.payer_pool import PayerPool
from tests.helpers import wait_for
from tests.pipeline.pipeline import landed

SOL = 1_000_000_000


@pytest.fixture
async def chain_ctx(localnet_faults: LocalnetProcess, tmp_path: Path
                    ) -> AsyncIterator[PipelineContext]:
    settings = Settings(solana_rpc_urls=[localnet_faults.rpc_url], solana_cluster="localnet",
                        state_dir=tmp_path, nft_uri_template="https://t.example/{ticket_id}")
    rpc = SolanaRpc.from_settings(settings)
    authority = Keypair()
    await rpc.request_airdrop(authority.pubkey(), 100 * SOL)
    no_db = cast(Any, None)  # budgets and builds read the chain only
    ctx = PipelineContext(
        settings=settings, pool=no_db, rpc=rpc, sender=no_db, policy=policy_of(settings),
        keys=Keys(authority, os.urandom(32), os.urandom(32)),
        payers=PayerPool(authority, (), 0),
    )

    async def funded() -> bool:
        return await rpc.get_balance(authority.pubkey()) > 0

    await wait_for(funded, 20, "the airdrop")
    try:
        yield ctx
    finally:
        await rpc.close()


async def signed_and_landed(ctx: PipelineContext, draft: Draft) -> tuple[int, nft.SignedTx]:
    """The limit asked for, and the transaction, after it landed without error."""

    async def unbudgeted() -> nft.SignedTx:
        return build_attempt(ctx, draft, None).signed

    budget = await compute_budget(ctx, draft, 1, unbudgeted)
    signed = build_attempt(ctx, draft, budget).signed
    await ctx.rpc.send_raw(signed.raw)
    await landed(ctx.rpc, [str(signed.signature)])
    assert await ctx.rpc.get_transaction_error(signed.signature) is None
    assert budget.unit_limit is not None
    return budget.unit_limit, signed


async def test_limits_follow_each_transaction_and_an_existing_account_fills_no_cache(
    chain_ctx: PipelineContext,
) -> None:
    ctx = chain_ctx
    blockhash = (await ctx.rpc.latest_blockhash())[0]
    first_holder, second_holder = Keypair().pubkey(), Keypair().pubkey()
    ticket = TicketRow(uuid4(), uuid4(), uuid4(), uuid4(), "active", None, "A-1", "Concert")
    mint_draft = Draft(TxOp.MINT, ticket.tenant_id, ticket, None, first_holder,
                       memo="cw:m:1", blockhash=blockhash, prefunded=0)
    mint_limit, _ = await signed_and_landed(ctx, mint_draft)
    mint = ctx.keys.mint_address(ticket.tenant_id, ticket.id)
        # within a couple of thousand units of what a mint uses (about 44,400 plus its search)
    steps = nft.address_search_steps(first_holder, mint)
    assert mint_limit - ADDRESS_SEARCH_STEP_UNITS * steps < 47_000
    minted = dataclasses.replace(ticket, token_mint=str(mint), status="minted")

    def moved(source: Pubkey, destination: Pubkey) -> Draft:
        return Draft(TxOp.TRANSFER, ticket.tenant_id, minted, source, destination,
                     memo=f"cw:{uuid4()}:1", blockhash=blockhash, prefunded=0)

    def base(limit: int, destination: Pubkey) -> int:
        """The limit without its own address search (which differs by holder)."""
        return limit - ADDRESS_SEARCH_STEP_UNITS * nft.address_search_steps(destination, mint)

    # to a new holder: simulated, and its kind's figure remembered
    creating_limit, _ = await signed_and_landed(ctx, moved(first_holder, second_holder))
    creating = base(creating_limit, second_holder)
    assert ctx.fees.cached_units((TxOp.TRANSFER, False)) is not None
    # back to the first holder, whose account exists: the cache's (creating) figure covers it
    back_limit, _ = await signed_and_landed(ctx, moved(second_holder, first_holder))
    assert base(back_limit, first_holder) == creating

    # A fresh cache whose first transfer goes to an existing account does not remember it:
    ctx.fees = dataclasses.replace(ctx.fees, simulated_units={})
    cheap_limit, _ = await signed_and_landed(ctx, moved(first_holder, second_holder))
    assert ctx.fees.cached_units((TxOp.TRANSFER, False)) is None
    cheap = base(cheap_limit, second_holder)
    assert cheap < creating - 10_000  # its own, smaller figure (creates no account)
    # so the next transfer that creates an account is simulated and still lands
    third = Keypair().pubkey()
    limit, _ = await signed_and_landed(ctx, moved(second_holder, third))
    assert base(limit, third) == creating
    assert ctx.fees.cached_units((TxOp.TRANSFER, False)) is not None


async def test_each_metadata_update_is_simulated_for_itself_and_a_large_one_still_lands(
    chain_ctx: PipelineContext,
) -> None:
    ctx = chain_ctx
    blockhash = (await ctx.rpc.latest_blockhash())[0]
    ticket = TicketRow(uuid4(), uuid4(), uuid4(), uuid4(), "sold", None, "B-2", "Concert")
    await signed_and_landed(ctx, Draft(TxOp.MINT, ticket.tenant_id, ticket, None,
                                       Keypair().pubkey(), memo="cw:m:1", blockhash=blockhash,
                                       prefunded=0))
    mint = ctx.keys.mint_address(ticket.tenant_id, ticket.id)
    minted = dataclasses.replace(ticket, token_mint=str(mint), status="minted")

    async def update(fields: dict[str, str]) -> int:
        account = await ctx.rpc.get_account(mint)
        assert account is not None
        plan = metadata.plan_update(metadata.read_mint(account.data, account.lamports),
                                    check_change(fields, None))
        draft = Draft(TxOp.METADATA_UPDATE, ticket.tenant_id, minted, None, None,
                      memo=f"cw:{uuid4()}:1", blockhash=blockhash, prefunded=0, update=plan)
        limit, _ = await signed_and_landed(ctx, draft)
        return limit

    small = await update({"seat": "B-2"})
    # Twelve new fields rewrite the metadata twelve times: many times the units of one. Given
    # the small one's limit it would fail on chain for want of units.
    large = await update({f"field_{i:02d}": "v" * 8 for i in range(12)})
    assert large > small + 50_000
    assert ctx.fees.cached_units((TxOp.METADATA_UPDATE, False)) is None
    assert await update({"seat": "B-3"}) < large  # and a small one after is not given its limit
