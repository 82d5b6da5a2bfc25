"""Other users of the cluster: a load whose transactions compete with chainworker's for blocks.

Each slot the load sends `competing_rate` x slot length transactions (fractions
carry over to the next slot), into the same buffer as everyone's, before the block
is packed. Each is a system transfer of a few lamports from one of
`competing_accounts` accounts to itself, with SetComputeUnitLimit
`competing_unit_limit` and SetComputeUnitPrice `competing_unit_price`
(micro-lamports per unit), signed with the latest blockhash. The accounts take
turns, so each writes only its own account: with enough of them the writable-account
limit does not cap the load, with one it does. A transfer consumes 450 units; a
unit limit below that makes the transactions fail on chain (they still land and pay).

The rate follows the nominal slot length, not the clock: a warp of N slots sends
N slots' worth. The accounts are derived from the seed (`genesis.competing_keypair`)
and funded out of nothing, as genesis accounts are, when first used or running low.
"""

from __future__ import annotations

from collections.abc import Callable

from solders.hash import Hash
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from solders.transaction import VersionedTransaction

from chainworker.localnet.fees import COMPUTE_BUDGET_PROGRAM
from chainworker.localnet.genesis import SYSTEM_PROGRAM, competing_keypair
from chainworker.localnet.scheduler import LeaderSettings

FUNDING_LAMPORTS = 10**15  # a million SOL per account
TOP_UP_BELOW_LAMPORTS = 10**14
_LAMPORT_CYCLE = 10**9  # transfer amounts repeat after this many transactions

# The legacy message solders compiles for [SetComputeUnitLimit, SetComputeUnitPrice,
# transfer(payer -> payer)]: one writable signer, two read-only programs. Built by hand
# because solders' builders cost ~200 us a transaction and this is sent by the thousand
# (a test holds the layout to solders' own).
_HEADER = bytes([1, 0, 2, 3])
_PROGRAMS = bytes(SYSTEM_PROGRAM) + bytes(COMPUTE_BUDGET_PROGRAM)


def message_bytes(
    payer: Pubkey, blockhash: Hash, unit_limit: int, unit_price: int, lamports: int
) -> bytes:
    """The message of one competing transaction (a transfer of `lamports` to the payer)."""
    return b"".join(
        (
            _HEADER,
            bytes(payer),
            _PROGRAMS,
            bytes(blockhash),
            b"\x03",
            bytes([2, 0, 5, 2]),
            unit_limit.to_bytes(4, "little"),
            bytes([2, 0, 9, 3]),
            unit_price.to_bytes(8, "little"),
            bytes([1, 2, 0, 0, 12]),
            (2).to_bytes(4, "little"),  # SystemInstruction::Transfer
            lamports.to_bytes(8, "little"),
        )
    )


class CompetingLoad:
    def __init__(
        self,
        settings: LeaderSettings,
        *,
        seed: int,
        slot_seconds: float,
        balance: Callable[[Pubkey], int],
        fund: Callable[[Pubkey, int], None],
    ) -> None:
        self.settings = settings
        self._seed = seed
        self._slot_seconds = slot_seconds
        self._balance = balance
        self._fund = fund
        self._keypairs: list[Keypair] = []
        self._carry = 0.0
        self._sent = 0

    def _payer(self, index: int) -> Keypair:
        while len(self._keypairs) <= index:
            self._keypairs.append(competing_keypair(self._seed, len(self._keypairs)))
        keypair = self._keypairs[index]
        if self._balance(keypair.pubkey()) < TOP_UP_BELOW_LAMPORTS:
            self._fund(keypair.pubkey(), FUNDING_LAMPORTS)
        return keypair

    def transactions(self, blockhash: Hash) -> list[tuple[VersionedTransaction, bytes]]:
        """This slot's share of the load, signed with `blockhash`: (transaction, wire bytes)."""
        settings = self.settings
        if settings.competing_rate <= 0:
            self._carry = 0.0
            return []
        self._carry += settings.competing_rate * self._slot_seconds
        count = int(self._carry)
        self._carry -= count
        made = []
        for _ in range(count):
            payer = self._payer(self._sent % settings.competing_accounts)
            lamports = self._sent % _LAMPORT_CYCLE + 1
            self._sent += 1
            message = message_bytes(
                payer.pubkey(),
                blockhash,
                settings.competing_unit_limit,
                settings.competing_unit_price,
                lamports,
            )
            raw = b"\x01" + bytes(payer.sign_message(message)) + message
            made.append((VersionedTransaction.from_bytes(raw), raw))
        return made
