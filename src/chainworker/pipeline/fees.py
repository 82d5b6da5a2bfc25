"""The compute budget of an attempt: a unit limit close to what it uses, and a unit price
from the fees recently paid to write the accounts it shares with others.

Blocks are filled, and priority fees paid, by the unit limit asked for, not the units used.
The units of a kind of transaction are simulated once (reused for a while); what differs
from one holder to the next, the address search of the holder's token account, is
counted per transaction. A metadata update is simulated for itself every time: its units
grow with the metadata it rewrites and the values it writes, so no figure of one update
is another's. The price is the configured percentile of the recent
prioritization fees of the transaction's fee payer (a ticket's own accounts are written by
nobody else), and a replacement of an expired attempt offers more.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from solders.pubkey import Pubkey

from chainworker.chain import fees, nft
from chainworker.chain.errors import ChainError
from chainworker.config import Settings
from chainworker.lifecycle.model import TxOp
from chainworker.pipeline.build import Draft
from chainworker.pipeline.context import PipelineContext, UnitsKind

# Used when simulation cannot answer (e.g. the operation would fail on chain anyway).
FALLBACK_UNITS = {
    TxOp.MINT: 60_000, TxOp.TRANSFER: 40_000, TxOp.BURN: 5_000, TxOp.VERIFY: 10_000,
    # an update appending 16 fields uses some 190,000 (each realloc rewrites the metadata)
    TxOp.METADATA_UPDATE: 250_000,
}
# A burn's CloseAccount of the mint or of the holder's account: about 1,600 units each.
FALLBACK_CLOSE_UNITS = 2_500
# A program-address derivation, one per bump the associated token program tries.
ADDRESS_SEARCH_STEP_UNITS = 1_500
# SetComputeUnitLimit and SetComputeUnitPrice, which the simulated draft does not carry.
BUDGET_INSTRUCTION_UNITS = 300


async def compute_budget(
    ctx: PipelineContext, draft: Draft, attempt: int,
    unbudgeted: Callable[[], Awaitable[nft.SignedTx]],
) -> nft.ComputeBudget:
    """The budget for `attempt` of the draft's transaction; `unbudgeted` builds it without
    one, to simulate when its kind has not been lately."""
    steps = _search_steps(ctx, draft)
    limit = unit_limit(ctx.settings, await _base_units(ctx, draft, steps, unbudgeted), steps)
    price = await _recent_price(ctx, ctx.payers.key_of(draft.payer))
    settings = ctx.settings
    price = fees.replacement_price(
        price, attempt,
        factor=settings.priority_fee_raise_factor,
        floor=settings.priority_fee_raise_floor_microlamports,
        cap=settings.priority_fee_max_microlamports,
    )
    return nft.ComputeBudget(unit_limit=limit, unit_price_microlamports=price)


def unit_limit(settings: Settings, base_units: int, search_steps: int) -> int:
    """The unit limit asked for a transaction whose kind uses `base_units` without the
    address search, and whose holder account takes `search_steps` steps to find."""
    return fees.compute_unit_limit(
        base_units + search_steps * ADDRESS_SEARCH_STEP_UNITS + BUDGET_INSTRUCTION_UNITS,
        settings.compute_unit_margin,
        settings.compute_unit_headroom,
    )


def attempt_cost(signers: int, budget: nft.ComputeBudget, rent: int) -> int:
    """Lamports an attempt can cost: its signatures, its priority fee and the rent it pays."""
    priority = fees.priority_fee(budget.unit_limit or 0, budget.unit_price_microlamports or 0)
    return signers * fees.LAMPORTS_PER_SIGNATURE + priority + rent


def _kind(draft: Draft) -> UnitsKind:
    if draft.op is TxOp.BURN:
        return (draft.op, draft.closes.accounts if draft.closes is not None else 0)
    return (draft.op, int(draft.prefunded > 0))


def _search_steps(ctx: PipelineContext, draft: Draft) -> int:
    """Address-search steps of the token account the transaction creates (none for a burn)."""
    if draft.destination is None:
        return 0
    if draft.op is TxOp.MINT:
        mint = ctx.keys.mint_address(draft.tenant_id, draft.ticket.id)
    else:
        assert draft.ticket.token_mint is not None
        mint = Pubkey.from_string(draft.ticket.token_mint)
    return nft.address_search_steps(draft.destination, mint)


async def _base_units(
    ctx: PipelineContext, draft: Draft, steps: int,
    unbudgeted: Callable[[], Awaitable[nft.SignedTx]],
) -> int:
    """Units of the draft's kind without its address search: remembered, or simulated.

    A transfer to a holder whose token account exists creates nothing and uses some 13,000
    units less; it is simulated for itself and not remembered, so that the transfers that
    do create one are never given its limit. A metadata update is never remembered either.
    """
    kind = _kind(draft)
    alone = draft.op is TxOp.METADATA_UPDATE
    cached = None if alone else ctx.fees.cached_units(kind)
    if cached is not None:
        return cached
    try:
        units = await ctx.rpc.simulate_units((await unbudgeted()).transaction)
    except ChainError:
        closes = draft.closes.accounts if draft.closes is not None else 0
        return FALLBACK_UNITS[draft.op] + closes * FALLBACK_CLOSE_UNITS
    base = max(0, units - steps * ADDRESS_SEARCH_STEP_UNITS)
    if alone or (draft.op is TxOp.TRANSFER and await _exists(ctx, draft)):
        return base
    ctx.fees.remember_units(kind, base)
    return base


async def _exists(ctx: PipelineContext, draft: Draft) -> bool:
    assert draft.destination is not None and draft.ticket.token_mint is not None
    mint = Pubkey.from_string(draft.ticket.token_mint)
    account = nft.holder_token_account(draft.destination, mint)
    try:
        return await ctx.rpc.get_account(account) is not None
    except ChainError:
        return True  # unknown: do not remember a figure that may be the cheaper one


async def _recent_price(ctx: PipelineContext, payer: Pubkey) -> int:
    price = ctx.fees.cached_price(payer)
    if price is None:
        recent = await ctx.rpc.recent_prioritization_fees([payer])
        price = fees.compute_unit_price(
            recent,
            ctx.settings.priority_fee_percentile,
            ctx.settings.priority_fee_max_microlamports,
        )
        ctx.fees.remember_price(payer, price)
    return price
