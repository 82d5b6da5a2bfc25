"""Which account pays for a transaction: the least-loaded funded fee payer of the pool.

A leader charges every transaction's requested units to each account it write-locks, and
gives one account at most 40% of a block. A fee payer is write-locked by every transaction
it pays for, so one payer caps the worker at 0.4 x block units / units per transaction;
a pool spreads the transactions over several. No I/O here: balances come from the top-up
round (`top_up.py`), which reads them.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field

from solders.pubkey import Pubkey

from chainworker.chain.keys import public_key
from chainworker.chain.signer import Signer

# Units charged to a payer are weighed over this long: a few 400 ms slots.
LOAD_WINDOW_SECONDS = 1.2


@dataclass(repr=False)
class PayerPool:
    """The pool's payers with their last known balances and their recent load.

    A payer whose balance is unknown or below `min_lamports` is not used; with none usable
    (or no pool configured) the authority pays.
    """

    authority: Signer
    payers: tuple[Signer, ...]
    min_lamports: int
    # payer -> lamports: read by the top-up round, lowered by what is signed meanwhile.
    balances: dict[Pubkey, int] = field(default_factory=dict)
    # payer -> [(monotonic time, units)] charged within the load window.
    _charged: dict[Pubkey, deque[tuple[float, int]]] = field(default_factory=dict)
    _load: dict[Pubkey, int] = field(default_factory=dict)
    _keys: dict[Pubkey, Signer] = field(default_factory=dict)
    _authority_key: Pubkey = field(default_factory=Pubkey.default)

    def __post_init__(self) -> None:
        self._authority_key = public_key(self.authority)
        self._keys = {public_key(payer): payer for payer in self.payers}
        for key in self._keys:
            self._charged[key] = deque()
            self._load[key] = 0

    def __repr__(self) -> str:
        return f"PayerPool({len(self.payers)} payers)"

    @property
    def keys(self) -> list[Pubkey]:
        return list(self._keys)

    def take(self) -> Signer | None:
        """The funded payer with the fewest units charged lately; None: the authority pays."""
        now = time.monotonic()
        best: Pubkey | None = None
        best_load = 0
        for key in self._keys:
            if self.balances.get(key, 0) < self.min_lamports:
                continue
            load = self._expire(key, now)
            if best is None or load < best_load:
                best, best_load = key, load
        return None if best is None else self._keys[best]

    def key_of(self, payer: Signer | None) -> Pubkey:
        """The paying account's address: the payer's, or the authority's."""
        return self._authority_key if payer is None else public_key(payer)

    def charge(self, payer: Signer | None, units: int, lamports: int) -> None:
        """Count a signed transaction against its payer: its unit limit and its cost."""
        if payer is None:
            return
        key = public_key(payer)
        if key not in self._keys:
            return
        self._charged[key].append((time.monotonic(), units))
        self._load[key] += units
        self.balances[key] = self.balances.get(key, 0) - lamports

    def note_balance(self, payer: Pubkey, lamports: int) -> None:
        if payer in self._keys:
            self.balances[payer] = lamports

    def _expire(self, key: Pubkey, now: float) -> int:
        charged = self._charged[key]
        while charged and now - charged[0][0] > LOAD_WINDOW_SECONDS:
            self._load[key] -= charged.popleft()[1]
        return self._load[key]
