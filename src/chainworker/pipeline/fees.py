"""The compute budget of an attempt: the unit limit from a simulation of its kind of
transaction and the unit price from the recent priority fees, each reused for a while."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from chainworker.chain import fees, nft
from chainworker.chain.errors import ChainError
from chainworker.lifecycle.model import TxOp
from chainworker.pipeline.context import PipelineContext

# Used when simulation cannot answer (e.g. the operation would fail on chain anyway).
FALLBACK_UNITS = {TxOp.MINT: 80_000, TxOp.TRANSFER: 50_000, TxOp.BURN: 15_000}
LAMPORTS_PER_SIGNATURE = 5_000


async def compute_budget(
    ctx: PipelineContext, op: TxOp, draft: Callable[[], Awaitable[nft.SignedTx]]
) -> nft.ComputeBudget:
    """The budget for an attempt of `op`; `draft` builds one to simulate when none was."""
    units = ctx.fees.cached_units(op)
    if units is None:
        try:
            units = await ctx.rpc.simulate_units((await draft()).transaction)
        except ChainError:
            units = FALLBACK_UNITS[op]
        ctx.fees.remember_units(op, units)
    price = ctx.fees.cached_price()
    if price is None:
        recent = await ctx.rpc.recent_prioritization_fees()
        price = fees.compute_unit_price(
            recent,
            ctx.settings.priority_fee_percentile,
            ctx.settings.priority_fee_max_microlamports,
        )
        ctx.fees.remember_price(price)
    limit = fees.compute_unit_limit(
        units, ctx.settings.compute_unit_margin, ctx.settings.compute_unit_headroom
    )
    return nft.ComputeBudget(unit_limit=limit, unit_price_microlamports=price)


def attempt_cost(signers: int, budget: nft.ComputeBudget, rent: int) -> int:
    """Lamports an attempt can cost: its signatures, its priority fee and the rent it pays."""
    priority = (budget.unit_limit or 0) * (budget.unit_price_microlamports or 0) // 1_000_000
    return signers * LAMPORTS_PER_SIGNATURE + priority + rent
