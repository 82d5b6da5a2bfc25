"""Keep the platform authority able to pay: airdrops where the cluster gives them."""

from __future__ import annotations

from typing import Final

from solders.pubkey import Pubkey

from chainworker.chain.errors import CONFIG, ChainError
from chainworker.chain.rpc import SolanaRpc

LAMPORTS_PER_SOL: Final = 1_000_000_000
AIRDROP_CLUSTERS: Final = frozenset({"localnet", "devnet", "testnet"})


async def ensure_funded(
    rpc: SolanaRpc,
    authority: Pubkey,
    *,
    cluster: str,
    min_lamports: int = LAMPORTS_PER_SOL,
    airdrop_lamports: int = 100 * LAMPORTS_PER_SOL,
) -> int:
    """The authority's balance, topped up by airdrop below `min_lamports` where possible.

    On clusters without airdrops an underfunded authority is a configuration error.
    """
    balance = await rpc.get_balance(authority)
    if balance >= min_lamports:
        return balance
    if cluster not in AIRDROP_CLUSTERS:
        raise ChainError(
            CONFIG,
            f"the platform authority {authority} holds {balance} lamports on {cluster}; "
            f"fund it with at least {min_lamports}",
        )
    # Devnet faucets cap a single airdrop; ask for what is needed, at most the requested amount.
    await rpc.request_airdrop(authority, max(airdrop_lamports, min_lamports - balance))
    return await rpc.get_balance(authority)
