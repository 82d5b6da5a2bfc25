"""The ledger's block production with the scheduler, driven directly (no server, no clock)."""

from __future__ import annotations

from solders.compute_budget import set_compute_unit_limit, set_compute_unit_price
from solders.hash import Hash
from solders.keypair import Keypair
from solders.message import Message
from solders.transaction import VersionedTransaction

from chainworker.localnet.ledger import Ledger
from chainworker.localnet.scheduler import LeaderSettings
from tests.localnet.helpers import SOL, sol_transfer


def _funded(ledger: Ledger, count: int) -> list[Keypair]:
    keys = [Keypair() for _ in range(count)]
    for key in keys:
        ledger.airdrop(key.pubkey(), SOL)
    ledger.produce_block()
    assert all(ledger.svm.get_balance(key.pubkey()) == SOL for key in keys)
    return keys


def _priced(ledger: Ledger, payer: Keypair, price: int) -> str:
    blockhash = Hash.from_string(ledger.blocks[ledger.slot].blockhash)
    instructions = [
        set_compute_unit_limit(10_000),
        set_compute_unit_price(price),
        sol_transfer(payer, Keypair().pubkey(), 1_000_000),
    ]
    transaction = VersionedTransaction(
        Message.new_with_blockhash(instructions, payer.pubkey(), blockhash), [payer]
    )
    return ledger.submit(transaction, bytes(transaction))


def test_a_block_out_of_time_leaves_the_rest_in_priority_order() -> None:
    ledger = Ledger(leader=LeaderSettings(block_unit_limit=0, account_unit_limit=0))
    payers = _funded(ledger, 7)
    sent = {price: _priced(ledger, payers[price], price) for price in range(6)}
    ledger.start_block()
    assert ledger.execute_some(2) == 4  # the time budget ran out after two
    late = _priced(ledger, payers[6], 3)  # sent meanwhile, at the price of one deferred
    assert ledger.defer_remaining() == 4
    first = ledger.finish_block()
    assert first.signatures == [sent[5], sent[4]]
    assert ledger.scheduler.current.deferred_for_time == 4
    second = ledger.produce_block()
    assert second.signatures == [sent[3], late, sent[2], sent[1], sent[0]]


def test_a_competing_load_funds_its_own_accounts_and_lands() -> None:
    settings = LeaderSettings(competing_rate=100, competing_accounts=3, competing_unit_price=7)
    ledger = Ledger(leader=settings, slot_seconds=0.05)  # 5 a block
    for _ in range(4):
        ledger.produce_block()
    counts = [len(ledger.blocks[slot].signatures) for slot in range(1, 5)]
    assert counts == [5, 5, 5, 5]
    block = ledger.blocks[4]
    assert block.fees is not None and block.fees.minimum == 7
    landed = [ledger.landed[signature] for signature in block.signatures]
    assert all(record.err is None for record in landed)
    assert len({record.account_keys[0] for record in landed}) == 3
    assert ledger.scheduler.totals["competing"] == 20
