"""The accounts a fresh cluster starts with, derived deterministically from the seed."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from solders.account import Account
from solders.epoch_schedule import EpochSchedule
from solders.hash import Hash
from solders.keypair import Keypair
from solders.litesvm import LiteSVM
from solders.pubkey import Pubkey

SYSTEM_PROGRAM = Pubkey.from_string("11111111111111111111111111111111")
TOKEN_PROGRAM = Pubkey.from_string("TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA")
TOKEN_2022_PROGRAM = Pubkey.from_string("TokenzQdBNbLqP5VEhdkAS6EPFLC1PHnBqCXEpPxuEb")
NATIVE_MINT = Pubkey.from_string("So11111111111111111111111111111111111111112")
MINT_SIZE = 82
LAMPORTS_PER_SOL = 1_000_000_000
FAUCET_LAMPORTS = 500_000_000 * LAMPORTS_PER_SOL
SLOTS_PER_EPOCH = 432_000


def _derive(seed: int, label: str) -> bytes:
    return hashlib.sha256(f"chainworker-localnet:{seed}:{label}".encode()).digest()


@dataclass(frozen=True)
class Genesis:
    seed: int
    genesis_hash: Hash
    identity: Keypair
    faucet: Keypair


def make_genesis(seed: int) -> Genesis:
    return Genesis(
        seed=seed,
        genesis_hash=Hash(_derive(seed, "genesis")),
        identity=Keypair.from_seed(_derive(seed, "identity")),
        faucet=Keypair.from_seed(_derive(seed, "faucet")),
    )


def competing_keypair(seed: int, index: int) -> Keypair:
    """Account `index` of the competing load (competing.py): the same for the same seed."""
    return Keypair.from_seed(_derive(seed, f"competing:{index}"))


def native_mint_account(rent_exempt_lamports: int) -> Account:
    """The wrapped-SOL mint: no authorities, supply 0, 9 decimals, initialized."""
    data = bytes(4 + 32) + (0).to_bytes(8, "little") + bytes([9, 1]) + bytes(4 + 32)
    return Account(lamports=rent_exempt_lamports, data=data, owner=TOKEN_PROGRAM)


def make_svm(genesis: Genesis) -> LiteSVM:
    """A LiteSVM whose blockhash window and history are left to the ledger."""
    svm = LiteSVM().with_blockhash_check(False).with_transaction_history(0)
    svm.set_epoch_schedule(EpochSchedule.without_warmup())
    svm.set_account(
        NATIVE_MINT, native_mint_account(svm.minimum_balance_for_rent_exemption(MINT_SIZE))
    )
    svm.set_account(
        genesis.faucet.pubkey(), Account(lamports=FAUCET_LAMPORTS, data=b"", owner=SYSTEM_PROGRAM)
    )
    return svm
