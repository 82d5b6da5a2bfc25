"""Small client-side helpers for localnet tests: stock solana-py only."""

from __future__ import annotations

import asyncio

import httpx
from solana.rpc.async_api import AsyncClient
from solana.rpc.commitment import Commitment
from solana.rpc.models import TxOpts
from solders.instruction import Instruction
from solders.keypair import Keypair
from solders.message import Message
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.system_program import TransferParams, transfer
from solders.transaction import VersionedTransaction

from chainworker.localnet.process import LocalnetProcess

SOL = 1_000_000_000


async def funded(client: AsyncClient, lamports: int = 10 * SOL) -> Keypair:
    keypair = Keypair()
    signature = (await client.request_airdrop(keypair.pubkey(), lamports)).value
    await wait_status(client, signature, "confirmed")
    return keypair


async def wait_status(
    client: AsyncClient, signature: Signature, level: str = "confirmed", wait_seconds: float = 10.0
):
    order = ["processed", "confirmed", "finalized"]
    deadline = asyncio.get_running_loop().time() + wait_seconds
    while asyncio.get_running_loop().time() < deadline:
        status = (await client.get_signature_statuses([signature])).value[0]
        if status is not None and status.confirmation_status is not None:
            if int(status.confirmation_status) >= order.index(level):
                return status
        await asyncio.sleep(0.02)
    raise AssertionError(f"{signature} did not reach {level} in {wait_seconds}s")


async def signed(
    client: AsyncClient, instructions: list[Instruction], payer: Keypair, *signers: Keypair
) -> tuple[VersionedTransaction, int]:
    latest = (await client.get_latest_blockhash(Commitment("confirmed"))).value
    message = Message.new_with_blockhash(instructions, payer.pubkey(), latest.blockhash)
    return VersionedTransaction(message, [payer, *signers]), latest.last_valid_block_height


async def send(
    client: AsyncClient,
    instructions: list[Instruction],
    payer: Keypair,
    *signers: Keypair,
    skip_preflight: bool = False,
) -> Signature:
    transaction, _ = await signed(client, instructions, payer, *signers)
    opts = TxOpts(
        skip_preflight=skip_preflight, preflight_commitment=Commitment("confirmed"), max_retries=0
    )
    return (await client.send_raw_transaction(bytes(transaction), opts)).value


def sol_transfer(source: Keypair, destination: Pubkey, lamports: int) -> Instruction:
    return transfer(
        TransferParams(from_pubkey=source.pubkey(), to_pubkey=destination, lamports=lamports)
    )


async def current_slot(client: AsyncClient) -> int:
    return (await client.get_slot(Commitment("processed"))).value


def step(localnet: LocalnetProcess, blocks: int = 1) -> None:
    """With the clock frozen, produce exactly `blocks` blocks."""
    localnet.set_faults(warp_slots=blocks)


async def rpc(url: str, method: str, params: list | None = None) -> dict:
    """One raw JSON-RPC call (for methods solana-py has no wrapper for)."""
    async with httpx.AsyncClient() as http:
        response = await http.post(
            url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": params or []}
        )
    return response.json()


async def post(url: str, payload: object, seconds: float = 5.0) -> httpx.Response:
    """One raw JSON-RPC HTTP exchange, for answers that may not be JSON at all."""
    async with httpx.AsyncClient(timeout=seconds) as http:
        return await http.post(url, json=payload)


def request(method: str, params: list | None = None, request_id: int = 1) -> dict:
    return {"jsonrpc": "2.0", "id": request_id, "method": method, "params": params or []}
