"""The cluster's state: LiteSVM plus everything a validator keeps that LiteSVM does not.

LiteSVM executes transactions against one account state. The ledger adds the rest:
a slot clock whose slot, block height and blockhash advance together; the
150-block blockhash window; commitment levels (an account read at `confirmed` or
`finalized` sees the state as of that slot, from a per-account version history;
reads may also be made as of an older tip, for an endpoint that lags);
a signature store for statuses, history and duplicate detection; the packet size
limit; and a fork that rolls back what has not reached `confirmed`. Which sent
transactions go into a block, and in what order, is the scheduler's (scheduler.py);
the competing load (competing.py) sends into the same buffer each slot.

Everything here is synchronous and single-threaded: the server calls it from one
event loop, so there are no locks.

The module stays whole past 400 lines because block production, execution,
commitment reads and the fork all keep one per-account version history
(`_versions`, `_touched`) consistent; splitting them would split that invariant.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from solders.account import Account
from solders.clock import Clock
from solders.hash import Hash
from solders.message import Message
from solders.pubkey import Pubkey
from solders.system_program import TransferParams, transfer
from solders.transaction import VersionedTransaction
from solders.transaction_metadata import FailedTransactionMetadata, SimulatedTransactionInfo

from chainworker.localnet import fee_history
from chainworker.localnet.competing import CompetingLoad
from chainworker.localnet.fee_history import BlockFees
from chainworker.localnet.fees import AnyMessage, fee_for_message
from chainworker.localnet.genesis import SLOTS_PER_EPOCH, SYSTEM_PROGRAM, make_genesis, make_svm
from chainworker.localnet.messages import error_json, extract_memo
from chainworker.localnet.scheduler import (
    Kind,
    LeaderSettings,
    PendingTransaction,
    Scheduler,
    pending_transaction,
)

Commitment = Literal["processed", "confirmed", "finalized"]
COMMITMENTS: tuple[Commitment, ...] = ("processed", "confirmed", "finalized")

MAX_PROCESSING_AGE = 150  # blocks a blockhash stays usable
MAX_RECENT_BLOCKHASHES = 300  # blockhashes remembered (for lastValidBlockHeight lookups)
STATUS_CACHE_SLOTS = 300  # statuses answered without searchTransactionHistory
# Slots of blocks with fees remembered: the 150 getRecentPrioritizationFees answers, plus
# those a lagging view or a fork skips.
FEE_SLOTS_KEPT = 512
PACKET_DATA_SIZE = 1232
_EMPTY_ACCOUNT = Account(lamports=0, data=b"", owner=SYSTEM_PROGRAM)


@dataclass(slots=True)
class Block:
    slot: int
    height: int
    blockhash: str
    parent_slot: int
    previous_blockhash: str
    block_time: int
    signatures: list[str] = field(default_factory=list)
    # Lowest compute-unit price paid in the block, overall and per write-locked account.
    fees: BlockFees | None = None


@dataclass(slots=True)
class LandedTransaction:
    signature: str
    slot: int
    transaction: VersionedTransaction
    raw: bytes
    err: Any  # the error's JSON form, None on success
    fee: int
    logs: list[str]
    pre_balances: list[int]
    post_balances: list[int]
    compute_units: int
    account_keys: list[str]
    memo: str | None


@dataclass(slots=True)
class SimulationOutcome:
    err: Any
    logs: list[str]
    units_consumed: int
    accounts: dict[Pubkey, Account | None]
    return_data: tuple[str, bytes] | None
    replacement_blockhash: tuple[str, int] | None


class TransactionRejected(Exception):
    """Refused before execution; `err` is the TransactionError's JSON form."""

    def __init__(self, err: Any, message: str) -> None:
        super().__init__(message)
        self.err = err


class Ledger:
    def __init__(
        self,
        *,
        seed: int = 0,
        confirm_depth: int = 1,
        finalize_depth: int = 32,
        history_limit: int = 500_000,
        block_limit: int = 50_000,
        leader: LeaderSettings | None = None,
        slot_seconds: float = 0.4,
    ) -> None:
        self.genesis = make_genesis(seed)
        self.svm = make_svm(self.genesis)
        self.confirm_depth = confirm_depth
        self.finalize_depth = max(finalize_depth, confirm_depth)
        self.history_limit = history_limit
        self.block_limit = block_limit
        self.start_time = time.time()
        self.transaction_count = 0

        genesis_hash = str(self.svm.latest_blockhash())
        genesis_block = Block(
            0, 0, genesis_hash, 0, str(self.genesis.genesis_hash), int(time.time())
        )
        self.blocks: dict[int, Block] = {0: genesis_block}
        self.slot = 0
        self.height = 0
        self._slot_by_height: dict[int, int] = {0: 0}
        self._hash_height: dict[str, int] = {genesis_hash: 0}
        self._recent_hashes: deque[str] = deque([genesis_hash])

        self.leader = leader if leader is not None else LeaderSettings()
        self.scheduler = Scheduler(self.leader)
        self.competing = CompetingLoad(
            self.leader,
            seed=seed,
            slot_seconds=slot_seconds,
            balance=lambda key: self.svm.get_balance(key) or 0,
            fund=self._fund,
        )
        self.fee_slots: deque[int] = deque(maxlen=FEE_SLOTS_KEPT)  # blocks with fees, oldest first
        self.landed: dict[str, LandedTransaction] = {}
        self._by_address: dict[str, list[str]] = {}
        self.known_accounts: set[Pubkey] = {self.genesis.faucet.pubkey()}

        # Account versions written in the last `retain_slots` slots:
        # key -> [(slot, account after that slot)], the first entry (slot -1) is the state before.
        # Reads as of any slot at or above `history_floor` are exact.
        self._versions: dict[Pubkey, list[tuple[int, Account | None]]] = {}
        self.retain_slots = self.finalize_depth
        self.history_floor = 0
        self._touched: dict[int, set[Pubkey]] = {}
        self._executing: deque[PendingTransaction] = deque()
        self._set_clock()

    # --- clock ----------------------------------------------------------------

    # Reads take an optional `tip`: the slot to read as of (None: the current slot).

    def slot_at(self, commitment: Commitment, tip: int | None = None) -> int:
        top = self.slot if tip is None else tip
        if commitment == "processed":
            return top
        depth = self.confirm_depth if commitment == "confirmed" else self.finalize_depth
        return max(top - depth, 0)

    def block_at(self, commitment: Commitment, tip: int | None = None) -> Block:
        """The newest block at or below the commitment's slot."""
        slot = self.slot_at(commitment, tip)
        while slot not in self.blocks and slot > 0:
            slot -= 1
        return self.blocks.get(slot) or self.blocks[min(self.blocks)]

    def height_at(self, commitment: Commitment, tip: int | None = None) -> int:
        return self.block_at(commitment, tip).height

    def epoch(self, slot: int | None = None) -> tuple[int, int]:
        """(epoch, slot index) of the slot, or of the current slot."""
        current = self.slot if slot is None else slot
        return divmod(current, SLOTS_PER_EPOCH)

    def latest_blockhash(self, commitment: Commitment, tip: int | None = None) -> tuple[str, int]:
        block = self.block_at(commitment, tip)
        return block.blockhash, block.height + MAX_PROCESSING_AGE

    def last_valid_height(self, blockhash: str) -> int | None:
        height = self._hash_height.get(blockhash)
        return None if height is None else height + MAX_PROCESSING_AGE

    def is_blockhash_valid(
        self, blockhash: str, commitment: Commitment = "processed", tip: int | None = None
    ) -> bool:
        """True while a transaction using it could still land in the next block."""
        last_valid = self.last_valid_height(blockhash)
        if last_valid is None:
            return False
        hash_height = last_valid - MAX_PROCESSING_AGE
        return hash_height <= self.height_at(commitment, tip) < last_valid

    def _set_clock(self) -> None:
        epoch, _ = self.epoch()
        now = int(time.time())
        self.svm.set_clock(Clock(self.slot, int(self.start_time), epoch, epoch + 1, now))

    def start_block(self) -> Block:
        """Advance slot, height and blockhash; take the block's transactions from the buffer."""
        parent = self.blocks[self.slot]
        for transaction, raw in self.competing.transactions(Hash.from_string(parent.blockhash)):
            self.submit(transaction, raw, kind="competing")
        self.svm.expire_blockhash()
        self.slot += 1
        self.height += 1
        self._set_clock()
        blockhash = str(self.svm.latest_blockhash())
        block = Block(
            self.slot, self.height, blockhash, parent.slot, parent.blockhash, int(time.time())
        )
        self.blocks[self.slot] = block
        self._slot_by_height[self.height] = self.slot
        self._hash_height[blockhash] = self.height
        self._recent_hashes.append(blockhash)
        while len(self._recent_hashes) > MAX_RECENT_BLOCKHASHES:
            del self._hash_height[self._recent_hashes.popleft()]
        self._executing = deque(self.scheduler.plan(self.slot, self.height))
        return block

    def execute_some(self, limit: int) -> int:
        """Execute up to `limit` of the current block's transactions; returns how many remain."""
        block = self.blocks[self.slot]
        scheduler = self.scheduler
        for _ in range(min(limit, len(self._executing))):
            item = self._executing.popleft()
            scheduler.executed(item, self._execute(item, block))
        return len(self._executing)

    def defer_remaining(self) -> int:
        """Give the block's unexecuted transactions back to the buffer, for the next block."""
        deferred = len(self._executing)
        self.scheduler.give_back(list(self._executing))
        self._executing.clear()
        return deferred

    def finish_block(self) -> Block:
        block = self.blocks[self.slot]
        if block.fees is not None:
            self.fee_slots.append(block.slot)
        self._prune_versions(self.slot - max(self.retain_slots, self.finalize_depth))
        while len(self.blocks) > self.block_limit:
            del self.blocks[min(self.blocks)]
        return block

    def produce_block(self) -> Block:
        self.start_block()
        self.execute_some(len(self._executing))
        return self.finish_block()

    def warp(self, slots: int) -> None:
        """Produce `slots` blocks at once, as if that many slots passed in an instant."""
        for _ in range(slots):
            self.produce_block()

    # --- transactions ---------------------------------------------------------

    def check_packet(self, raw: bytes) -> None:
        if len(raw) > PACKET_DATA_SIZE:
            raise TransactionRejected(
                None,
                f"base64 encoded solana_transaction::versioned::VersionedTransaction too large: "
                f"{len(raw)} bytes (max: encoded/raw {PACKET_DATA_SIZE * 4 // 3 + 4}/"
                f"{PACKET_DATA_SIZE})",
            )

    def is_duplicate(self, signature: str) -> bool:
        return signature in self.landed

    def submit(
        self,
        transaction: VersionedTransaction,
        raw: bytes,
        delay_slots: int = 0,
        kind: Kind = "user",
    ) -> str:
        """Buffer for the next block (or later); a signature already buffered is not buffered
        twice. The signature is returned even when a full buffer drops the transaction."""
        signature = str(transaction.signatures[0])
        if signature in self.scheduler or signature in self.landed:
            return signature
        item = pending_transaction(
            transaction,
            raw,
            land_slot=self.slot + 1 + max(delay_slots, 0),
            last_valid=self.last_valid_height(str(transaction.message.recent_blockhash)),
            kind=kind,
        )
        self.scheduler.submit(item)
        return signature

    def airdrop(self, recipient: Pubkey, lamports: int) -> str:
        faucet = self.genesis.faucet
        message = Message.new_with_blockhash(
            [
                transfer(
                    TransferParams(
                        from_pubkey=faucet.pubkey(), to_pubkey=recipient, lamports=lamports
                    )
                )
            ],
            faucet.pubkey(),
            Hash.from_string(self.blocks[self.slot].blockhash),
        )
        transaction = VersionedTransaction(message, [faucet])
        return self.submit(transaction, bytes(transaction), kind="airdrop")

    def _fund(self, key: Pubkey, lamports: int) -> None:
        """Give an account lamports out of nothing (the competing load's), as genesis does."""
        versions = self._versions
        if key not in versions:
            versions[key] = [(-1, self.svm.get_account(key))]
        account = Account(lamports=lamports, data=b"", owner=SYSTEM_PROGRAM)
        self.svm.set_account(key, account)
        slot = self.slot + 1  # as part of the next block: the current one is done
        versions[key].append((slot, account))
        self._touched.setdefault(slot, set()).add(key)
        self.known_accounts.add(key)

    def _execute(self, item: PendingTransaction, block: Block) -> bool:
        """Execute one of the block's transactions; whether it landed."""
        if item.signature in self.landed:
            return False  # AlreadyProcessed: dropped, nothing charged
        if block.height > item.last_valid:
            return False  # BlockhashNotFound: dropped, nothing charged
        message = item.transaction.message
        svm = self.svm
        keys = list(message.account_keys)
        writable = item.writable
        versions = self._versions
        for key in writable:
            if key not in versions:
                versions[key] = [(-1, svm.get_account(key))]
        pre = [svm.get_balance(key) or 0 for key in keys]
        result = svm.send_transaction(item.transaction)
        post = [svm.get_balance(key) or 0 for key in keys]
        if isinstance(result, FailedTransactionMetadata):
            if post[0] == pre[0]:
                return False  # failed to load (signature, fee payer, funds for fee): never lands
            meta = result.meta()
            err = error_json(result.err())
        else:
            meta = result
            err = None
        slot = block.slot
        touched = self._touched.setdefault(slot, set())
        for key in writable:
            versions[key].append((slot, svm.get_account(key)))
            touched.add(key)
        key_strings = [str(key) for key in keys]
        record = LandedTransaction(
            signature=item.signature,
            slot=slot,
            transaction=item.transaction,
            raw=item.raw,
            err=err,
            fee=meta.fee(),
            logs=list(meta.logs()),
            pre_balances=pre,
            post_balances=post,
            compute_units=meta.compute_units_consumed(),
            account_keys=key_strings,
            memo=extract_memo(message),
        )
        self.landed[item.signature] = record
        if len(self.landed) > self.history_limit:
            del self.landed[next(iter(self.landed))]
        block.signatures.append(item.signature)
        for key_string in key_strings:
            self._by_address.setdefault(key_string, []).append(item.signature)
        self.known_accounts.update(keys)
        self.transaction_count += 1
        block.fees = fee_history.record(block.fees, item.price, item.units, writable)
        return True

    def simulate(
        self,
        transaction: VersionedTransaction,
        *,
        sig_verify: bool,
        replace_blockhash: bool,
        commitment: Commitment,
        addresses: Iterable[Pubkey] = (),
        tip: int | None = None,
    ) -> SimulationOutcome:
        """Run against the current state; the blockhash is judged as of `tip`."""
        replacement: tuple[str, int] | None = None
        if replace_blockhash:
            replacement = self.latest_blockhash(commitment, tip)
        elif not self.is_blockhash_valid(
            str(transaction.message.recent_blockhash), commitment, tip
        ):
            return SimulationOutcome("BlockhashNotFound", [], 0, {}, None, None)
        if self.is_duplicate(str(transaction.signatures[0])):
            return SimulationOutcome("AlreadyProcessed", [], 0, {}, None, replacement)
        self.svm.with_sigverify(sig_verify)
        try:
            result = self.svm.simulate_transaction(transaction)
        finally:
            self.svm.with_sigverify(True)
        if isinstance(result, SimulatedTransactionInfo):
            meta = result.meta()
            post = dict(result.post_accounts())
            err = None
        else:
            meta = result.meta()
            post = {}
            err = error_json(result.err())
        accounts = {key: post.get(key, self.svm.get_account(key)) for key in addresses}
        return_data = meta.return_data()
        returned = (
            (str(return_data.program_id), bytes(return_data.data)) if return_data.data else None
        )
        return SimulationOutcome(
            err, list(meta.logs()), meta.compute_units_consumed(), accounts, returned, replacement
        )

    def fee_for(self, message: AnyMessage) -> int:
        return fee_for_message(message)

    # --- reads ----------------------------------------------------------------

    def get_account(
        self, key: Pubkey, commitment: Commitment = "processed", tip: int | None = None
    ) -> Account | None:
        versions = self._versions.get(key)
        if (commitment == "processed" and tip is None) or versions is None:
            account = self.svm.get_account(key)
        else:
            # Below the floor the history is gone; the oldest state kept is the best answer.
            limit = max(self.slot_at(commitment, tip), self.history_floor)
            account = next(acct for slot, acct in reversed(versions) if slot <= limit)
        if account is None or account.lamports == 0:
            return None
        return account

    def program_accounts(
        self, program: Pubkey, commitment: Commitment = "processed", tip: int | None = None
    ) -> list[tuple[Pubkey, Account]]:
        current = dict(self.svm.get_program_accounts(program))
        if commitment != "processed" or tip is not None:
            for key in self._versions:
                account = self.get_account(key, commitment, tip)
                if account is not None and account.owner == program:
                    current[key] = account
                else:
                    current.pop(key, None)
        return [(key, acct) for key, acct in current.items() if acct.lamports > 0]

    def status_of(
        self, signature: str, search_history: bool, tip: int | None = None
    ) -> LandedTransaction | None:
        record = self.landed.get(signature)
        if record is None:
            return None
        top = self.slot if tip is None else tip
        if record.slot > top:
            return None
        if not search_history and record.slot < top - STATUS_CACHE_SLOTS:
            return None
        return record

    def confirmation_of(
        self, record: LandedTransaction, tip: int | None = None
    ) -> tuple[Commitment, int | None]:
        if record.slot <= self.slot_at("finalized", tip):
            return "finalized", None
        confirmations = (self.slot if tip is None else tip) - record.slot
        if record.slot <= self.slot_at("confirmed", tip):
            return "confirmed", confirmations
        return "processed", confirmations

    def visible_at(
        self, record: LandedTransaction, commitment: Commitment, tip: int | None = None
    ) -> bool:
        return record.slot <= self.slot_at(commitment, tip)

    def transaction_count_at(self, tip: int | None = None) -> int:
        if tip is None:
            return self.transaction_count
        later = sum(
            len(block.signatures)
            for slot in range(tip + 1, self.slot + 1)
            if (block := self.blocks.get(slot)) is not None
        )
        return self.transaction_count - later

    def signatures_for(self, address: str) -> list[str]:
        return self._by_address.get(address, [])

    # --- faults ---------------------------------------------------------------

    def fork(self) -> int:
        """Roll back every block above the confirmed slot; returns how many transactions."""
        keep = self.slot_at("confirmed")
        rolled_back = 0
        for slot in [slot for slot in self._touched if slot > keep]:
            for key in self._touched.pop(slot):
                versions = self._versions[key]
                while versions[-1][0] > keep:
                    versions.pop()
                self.svm.set_account(key, versions[-1][1] or _EMPTY_ACCOUNT)
        for slot in range(keep + 1, self.slot + 1):
            block = self.blocks.get(slot)
            if block is None:
                continue
            for signature in block.signatures:
                record = self.landed.pop(signature, None)
                if record is None:
                    continue
                rolled_back += 1
                self.transaction_count -= 1
                for key_string in record.account_keys:
                    listed = self._by_address.get(key_string)
                    if listed and listed[-1] == signature:
                        listed.pop()
            block.signatures = []
            block.fees = None
        return rolled_back

    def _prune_versions(self, floor: int) -> None:
        self.history_floor = max(self.history_floor, floor)
        for slot in [slot for slot in self._touched if slot <= floor]:
            for key in self._touched.pop(slot):
                versions = self._versions.get(key)
                if versions is None:
                    continue
                index = max(i for i, (s, _) in enumerate(versions) if s <= floor)
                del versions[:index]
                if len(versions) == 1:
                    del self._versions[key]
