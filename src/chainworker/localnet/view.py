"""The ledger as one endpoint reads it: as of the current slot, or some slots behind.

A load-balanced RPC provider routes requests to nodes that are not all caught
up: one of them answers with the slot, balances, statuses and blockhash of a few
slots ago. A view with a lag reads the shared ledger as of `slot - lag`, from the
same per-account version history that commitment-level reads use. With no lag
every read is the ledger's own (the fast paths stay).
"""

from __future__ import annotations

from collections.abc import Callable

from solders.account import Account
from solders.pubkey import Pubkey

from chainworker.localnet.ledger import (
    MAX_PROCESSING_AGE,
    Block,
    Commitment,
    LandedTransaction,
    Ledger,
)


def _no_lag() -> int:
    return 0


class LedgerView:
    def __init__(self, ledger: Ledger, lag: Callable[[], int] = _no_lag) -> None:
        self.ledger = ledger
        self._lag = lag

    @property
    def lag(self) -> int:
        """How many slots behind the cluster this view is."""
        return min(max(self._lag(), 0), self.ledger.slot)

    @property
    def tip(self) -> int | None:
        """The slot reads are made as of; None when the view is not behind."""
        lag = self.lag
        return None if lag == 0 else self.ledger.slot - lag

    @property
    def slot(self) -> int:
        return self.ledger.slot_at("processed", self.tip)

    def slot_at(self, commitment: Commitment) -> int:
        return self.ledger.slot_at(commitment, self.tip)

    def block_at(self, commitment: Commitment) -> Block:
        return self.ledger.block_at(commitment, self.tip)

    def height_at(self, commitment: Commitment) -> int:
        return self.ledger.height_at(commitment, self.tip)

    def epoch(self, slot: int | None = None) -> tuple[int, int]:
        return self.ledger.epoch(self.slot if slot is None else slot)

    def latest_blockhash(self, commitment: Commitment) -> tuple[str, int]:
        return self.ledger.latest_blockhash(commitment, self.tip)

    def is_blockhash_valid(self, blockhash: str, commitment: Commitment) -> bool:
        return self.ledger.is_blockhash_valid(blockhash, commitment, self.tip)

    def is_newer_than_view(self, blockhash: str) -> bool:
        """A blockhash the ledger knows from a block this view has not reached yet."""
        tip = self.tip
        last_valid = self.ledger.last_valid_height(blockhash)
        if tip is None or last_valid is None:
            return False
        return last_valid - MAX_PROCESSING_AGE > self.ledger.height_at("processed", tip)

    def get_account(self, key: Pubkey, commitment: Commitment = "processed") -> Account | None:
        return self.ledger.get_account(key, commitment, self.tip)

    def program_accounts(
        self, program: Pubkey, commitment: Commitment = "processed"
    ) -> list[tuple[Pubkey, Account]]:
        return self.ledger.program_accounts(program, commitment, self.tip)

    def status_of(self, signature: str, search_history: bool) -> LandedTransaction | None:
        return self.ledger.status_of(signature, search_history, self.tip)

    def confirmation_of(self, record: LandedTransaction) -> tuple[Commitment, int | None]:
        return self.ledger.confirmation_of(record, self.tip)

    def visible_at(self, record: LandedTransaction, commitment: Commitment) -> bool:
        return self.ledger.visible_at(record, commitment, self.tip)

    @property
    def transaction_count(self) -> int:
        return self.ledger.transaction_count_at(self.tip)
