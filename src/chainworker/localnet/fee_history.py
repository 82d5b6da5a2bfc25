"""The priority fees recent blocks paid, as agave's getRecentPrioritizationFees reports them.

Agave (runtime/src/prioritization_fee_cache.rs, prioritization_fee.rs) keeps, per
block, the minimum compute-unit price of its transactions and, per write-locked
account, the minimum price of the transactions that write-locked it. This does the same:

- The price is the SetComputeUnitPrice value, micro-lamports per compute unit (0
  when not set). Every transaction included counts, failed ones too (they are
  committed); one that requests a unit limit of 0 does not (agave skips them: their
  price says nothing). There are no vote transactions here; agave skips those too.
- A block enters the history when it is confirmed (agave finalizes a block's entry
  on optimistic confirmation), and only when at least one transaction counted: a
  block with none is absent from the answer, not reported as 0.
- The history holds the newest 150 such blocks (blocks, not slots: after empty
  slots it reaches further back than 150 slots).
- The answer, oldest first, is per block the block's minimum, maxed with the minimum
  of each given account the block write-locked. Where the block write-locked none of
  them the answer is the block's minimum, not 0 (issue #14 said "0 where none did";
  agave answers the block minimum, and so does this).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from solders.pubkey import Pubkey

MAX_NUM_RECENT_BLOCKS = 150


@dataclass(slots=True)
class BlockFees:
    minimum: int
    accounts: dict[Pubkey, int] = field(default_factory=dict)


def record(
    fees: BlockFees | None, price: int, units: int, writable: Iterable[Pubkey]
) -> BlockFees | None:
    """A block's fees after one more included transaction (None: none counted yet)."""
    if units == 0:
        return fees
    if fees is None:
        fees = BlockFees(price)
    elif price < fees.minimum:
        fees.minimum = price
    accounts = fees.accounts
    for key in writable:
        current = accounts.get(key)
        if current is None or price < current:
            accounts[key] = price
    return fees


def answer(blocks: Iterable[tuple[int, BlockFees]], keys: Sequence[Pubkey]) -> list[dict[str, int]]:
    """getRecentPrioritizationFees' result for (slot, fees) pairs, oldest first."""
    result = []
    for slot, fees in blocks:
        fee = fees.minimum
        for key in keys:
            account_fee = fees.accounts.get(key)
            if account_fee is not None and account_fee > fee:
                fee = account_fee
        result.append({"prioritizationFee": fee, "slot": slot})
    return result
