"""Helpers for the leader-scheduling tests: budgeted transfers, funded payers, landing slots."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from solana.rpc.async_api import AsyncClient
from solana.rpc.commitment import Commitment
from solana.rpc.models import TxOpts
from solders.compute_budget import set_compute_unit_limit, set_compute_unit_price
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from solders.signature import Signature

from chainworker.localnet.process import LocalnetProcess, start_localnet
from tests.localnet.helpers import SOL, signed, sol_transfer, step

SKIP = TxOpts(skip_preflight=True, max_retries=0)
PROCESSED = Commitment("processed")
CONFIRMED = Commitment("confirmed")


# A test module imports these three: its own localnet, frozen and cleared around each test.
@pytest.fixture(scope="module")
def node() -> Iterator[LocalnetProcess]:
    with start_localnet(slot_ms=50, seed=21) as started:
        yield started


@pytest.fixture
async def leader(node: LocalnetProcess) -> AsyncIterator[LocalnetProcess]:
    """The module's localnet with its clock frozen: blocks come from `step` alone."""
    node.clear_faults()
    node.set_faults(clock_frozen=True)
    yield node
    node.clear_faults()


@pytest.fixture
async def client(node: LocalnetProcess) -> AsyncIterator[AsyncClient]:
    async with AsyncClient(node.rpc_url, commitment=CONFIRMED, timeout=10) as rpc:
        yield rpc


async def fund(client: AsyncClient, node: LocalnetProcess, count: int) -> list[Keypair]:
    """`count` payers with 1 SOL each; the clock must be frozen (two blocks are stepped)."""
    keys = [Keypair() for _ in range(count)]
    signatures = [(await client.request_airdrop(key.pubkey(), SOL)).value for key in keys]
    step(node, 2)
    statuses = (await client.get_signature_statuses(signatures)).value
    assert all(status is not None for status in statuses)
    return keys


async def send_budgeted(
    client: AsyncClient,
    payer: Keypair,
    *,
    units: int,
    price: int,
    destination: Pubkey | None = None,
    lamports: int = 1_000_000,
) -> tuple[Signature, int]:
    """A transfer requesting `units` at `price` micro-lamports a unit: (signature, lastValid)."""
    instructions = [
        set_compute_unit_limit(units),
        set_compute_unit_price(price),
        sol_transfer(payer, destination or Keypair().pubkey(), lamports),
    ]
    transaction, last_valid = await signed(client, instructions, payer)
    signature = (await client.send_raw_transaction(bytes(transaction), SKIP)).value
    return signature, last_valid


async def landed_slots(client: AsyncClient, signatures: list[Signature]) -> list[int | None]:
    """The slot each landed in (processed), None for those that did not."""
    statuses = (await client.get_signature_statuses(signatures, True)).value
    return [None if status is None else status.slot for status in statuses]


async def height(client: AsyncClient) -> int:
    return (await client.get_block_height(PROCESSED)).value


async def slot(client: AsyncClient) -> int:
    return (await client.get_slot(PROCESSED)).value


def scheduler_stats(node: LocalnetProcess) -> dict:
    stats: dict = node.stats()["scheduler"]
    return stats
