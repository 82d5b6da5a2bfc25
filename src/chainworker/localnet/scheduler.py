"""Block packing as a mainnet leader does it: block limits, priority order, a bounded buffer.

Every transaction sent waits in one buffer, kept in priority order. When a block
starts, the leader walks the buffer from the top and takes each transaction that
is due (`land_delay_slots`) and fits:

- **Block limit** (`block_unit_limit`, default 60,000,000, SIMD-0256): the sum of
  the requested compute-unit limits of a block's transactions.
- **Writable-account limit** (`account_unit_limit`, default 24,000,000, 40% of the
  block limit, SIMD-0306): for each write-locked account (the fee payer is one),
  the sum of the requested limits of the block's transactions that write-lock it.
- 0 means unlimited, for either.

A transaction is charged its *requested* unit limit (SetComputeUnitLimit, else
200,000 per instruction other than ComputeBudget's, at most 1,400,000: `fees.compute_budget`),
not what it consumed. Agave reserves the requested units the same way but gives
back the unused part once the transaction has executed, so a real block can hold
more transactions that ask for more than they use; agave also charges signatures,
write locks, instruction data and loaded account data, which this does not.

**Priority** is the compute-unit price (SetComputeUnitPrice, micro-lamports per
unit, 0 when not set), highest first, then arrival, earliest first. Agave's
scheduler orders by reward x 10^6 / (cost + 1), reward being what the leader earns
(the priority fee and its share of the signature fees) and cost the cost model's
full cost; the two agree for transactions that differ only in their price.
requestAirdrop's transactions are the test harness's, not a competitor's: they go
before every price, so a competing load cannot starve the faucet.

What does not fit stays in the buffer for the next block, for as long as its
blockhash is valid; the first block past its `lastValidBlockHeight` drops it. A
block that runs out of time (the server's BLOCK_TIME_BUDGET) gives the rest of
its transactions back to the buffer.

**The buffer** holds at most `pending_limit` transactions (default 100,000; 0:
unbounded), not counting the block being executed. A transaction sent to a full
buffer drops the lowest-priority one, the newest first among equals (itself, when
it is that one), as an overloaded leader does; the send is answered with the
signature all the same, and the transaction never lands.
"""

from __future__ import annotations

import itertools
from bisect import insort
from collections import deque
from dataclasses import asdict, dataclass, fields
from operator import attrgetter
from typing import Any, Literal

from solders.pubkey import Pubkey
from solders.transaction import VersionedTransaction

from chainworker.localnet.fees import compute_budget
from chainworker.localnet.messages import writable_keys

DEFAULT_BLOCK_UNIT_LIMIT = 60_000_000
DEFAULT_ACCOUNT_UNIT_LIMIT = DEFAULT_BLOCK_UNIT_LIMIT * 40 // 100
DEFAULT_PENDING_LIMIT = 100_000
RECENT_BLOCKS = 1000  # per-block figures kept for /admin/stats
# Above any u64 compute-unit price: the faucet's airdrops go first.
AIRDROP_PRIORITY = 2**64

Kind = Literal["user", "competing", "airdrop"]


@dataclass
class LeaderSettings:
    """How the leader packs blocks, and the competing load it packs them against.

    Settings with the names of CLI flags and of /admin/faults fields (faults.py
    validates them); the competing load is described in competing.py.
    """

    block_unit_limit: int = DEFAULT_BLOCK_UNIT_LIMIT
    account_unit_limit: int = DEFAULT_ACCOUNT_UNIT_LIMIT
    pending_limit: int = DEFAULT_PENDING_LIMIT
    competing_rate: float = 0.0
    competing_unit_price: int = 0
    competing_unit_limit: int = 200_000
    competing_accounts: int = 16


LEADER_FIELDS = frozenset(f.name for f in fields(LeaderSettings))


@dataclass(slots=True)
class PendingTransaction:
    signature: str
    transaction: VersionedTransaction
    raw: bytes
    land_slot: int  # the earliest slot it may land in
    units: int  # requested compute-unit limit: what the block limits are charged
    price: int  # compute-unit price in micro-lamports: the priority
    writable: tuple[Pubkey, ...]
    last_valid: int  # the last block height its blockhash may land in; -1: unknown blockhash
    kind: Kind = "user"
    order: tuple[int, int] = (0, 0)  # (-priority, arrival): the buffer's sort key, set on entry


_order = attrgetter("order")


def pending_transaction(
    transaction: VersionedTransaction,
    raw: bytes,
    *,
    land_slot: int,
    last_valid: int | None,
    kind: Kind = "user",
) -> PendingTransaction:
    """A sent transaction as the leader weighs it: requested units, price, write locks."""
    message = transaction.message
    units, price = compute_budget(message)
    return PendingTransaction(
        str(transaction.signatures[0]),
        transaction,
        raw,
        land_slot=land_slot,
        units=units,
        price=price,
        writable=tuple(writable_keys(message)),
        last_valid=-1 if last_valid is None else last_valid,
        kind=kind,
    )


@dataclass(slots=True)
class BlockStats:
    """What the leader did in one slot."""

    slot: int
    units: int = 0  # requested units of the transactions included
    transactions: int = 0  # included (landed, failed ones too)
    competing: int = 0  # of which the competing load's
    deferred_for_limits: int = 0  # due, but did not fit a limit: wait for the next block
    deferred_for_time: int = 0  # taken, but the block ran out of time: back to the buffer
    dropped_expired: int = 0  # dropped from the buffer: blockhash too old
    dropped_buffer_full: int = 0  # dropped during this slot for a full buffer

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


TOTALS = tuple(f.name for f in fields(BlockStats) if f.name != "slot")


class Scheduler:
    """The pending buffer and the block packing; single-threaded, as the ledger is."""

    def __init__(self, settings: LeaderSettings) -> None:
        self.settings = settings
        self._pending: list[PendingTransaction] = []  # sorted by `order`
        self._signatures: set[str] = set()  # buffered or in the block being executed
        self._arrivals = itertools.count()
        self.current = BlockStats(0)
        self.recent: deque[BlockStats] = deque([self.current], maxlen=RECENT_BLOCKS)
        self.totals = dict.fromkeys(TOTALS, 0)

    def __len__(self) -> int:
        return len(self._pending)

    def __contains__(self, signature: str) -> bool:
        return signature in self._signatures

    def _count(self, name: str, amount: int = 1) -> None:
        setattr(self.current, name, getattr(self.current, name) + amount)
        self.totals[name] += amount

    def submit(self, item: PendingTransaction) -> bool:
        """Buffer it; False when the buffer was full and it was the one dropped."""
        priority = AIRDROP_PRIORITY if item.kind == "airdrop" else item.price
        item.order = (-priority, next(self._arrivals))
        limit = self.settings.pending_limit
        while limit and len(self._pending) >= limit:
            lowest = self._pending[-1]
            self._count("dropped_buffer_full")
            if item.order > lowest.order:  # it is the lowest, or the newest of the lowest
                return False
            self._pending.pop()
            self._signatures.discard(lowest.signature)
        insort(self._pending, item, key=_order)
        self._signatures.add(item.signature)
        return True

    def plan(self, slot: int, height: int) -> list[PendingTransaction]:
        """Start block `slot` at `height`: take from the buffer what is due and fits, in order."""
        self.current = BlockStats(slot)
        self.recent.append(self.current)
        block_limit = self.settings.block_unit_limit
        account_limit = self.settings.account_unit_limit
        block_units = 0
        account_units: dict[Pubkey, int] = {}
        taken: list[PendingTransaction] = []
        kept: list[PendingTransaction] = []
        expired = deferred = 0
        for item in self._pending:
            if item.last_valid < height:
                self._signatures.discard(item.signature)
                expired += 1
                continue
            if item.land_slot > slot:
                kept.append(item)
                continue
            units = item.units
            if block_limit and block_units + units > block_limit:
                kept.append(item)
                deferred += 1
                continue
            if account_limit:
                if any(account_units.get(key, 0) + units > account_limit for key in item.writable):
                    kept.append(item)
                    deferred += 1
                    continue
                for key in item.writable:
                    account_units[key] = account_units.get(key, 0) + units
            block_units += units
            taken.append(item)
        self._pending = kept
        self._count("dropped_expired", expired)
        self._count("deferred_for_limits", deferred)
        return taken

    def executed(self, item: PendingTransaction, landed: bool) -> None:
        """One of the block's transactions was executed; `landed`: it is in the block."""
        self._signatures.discard(item.signature)
        if landed:
            self._count("units", item.units)
            self._count("transactions")
            if item.kind == "competing":
                self._count("competing")

    def give_back(self, items: list[PendingTransaction]) -> None:
        """The block ran out of time: these wait for the next one, in their order."""
        if not items:
            return
        self._count("deferred_for_time", len(items))
        self._pending.extend(items)
        self._pending.sort(key=_order)  # two sorted runs: linear

    def stats(self, blocks: int) -> dict[str, Any]:
        """The buffer, the totals since start and the last `blocks` blocks' figures."""
        recent = list(self.recent)[-blocks:] if blocks > 0 else []
        return {
            "pending": len(self._pending),
            "totals": dict(self.totals),
            "blocks": [stats.as_dict() for stats in recent],
        }
