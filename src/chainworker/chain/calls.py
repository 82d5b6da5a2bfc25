"""The JSON-RPC requests SolanaRpc makes, as solders' typed requests (`solders.rpc.requests`).

Every method chainworker calls has a typed request class, so no body is written by hand; a
method solders lacks would need a plain-JSON body, with a comment saying so. Ids are unique in
the process: the answers of a batch are matched to its requests by id.

Input solders cannot encode (a signature string that is not one, an unknown commitment) is
refused here with the error a node would have answered: rpc, Invalid params (-32602).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from solders.account_decoder import UiAccountEncoding
from solders.commitment_config import CommitmentLevel
from solders.pubkey import Pubkey
from solders.rpc.config import (
    RpcAccountInfoConfig,
    RpcContextConfig,
    RpcRequestAirdropConfig,
    RpcSendTransactionConfig,
    RpcSignatureStatusConfig,
    RpcSimulateTransactionConfig,
    RpcTransactionConfig,
)
from solders.rpc.requests import (
    Body,
    GetAccountInfo,
    GetBalance,
    GetBlockHeight,
    GetGenesisHash,
    GetLatestBlockhash,
    GetMultipleAccounts,
    GetRecentPrioritizationFees,
    GetSignatureStatuses,
    GetTokenLargestAccounts,
    GetTransaction,
    RequestAirdrop,
    SendRawTransaction,
    SimulateVersionedTransaction,
)
from solders.signature import Signature
from solders.transaction import VersionedTransaction
from solders.transaction_status import UiTransactionEncoding

from chainworker.chain.errors import RPC, ChainError
from chainworker.lifecycle.model import Commitment

INVALID_PARAMS: Final = -32602
_LEVELS: Final = {
    Commitment.PROCESSED: CommitmentLevel.Processed,
    Commitment.CONFIRMED: CommitmentLevel.Confirmed,
    Commitment.FINALIZED: CommitmentLevel.Finalized,
}
_ids = itertools.count(1)


@dataclass(frozen=True, slots=True)
class Call:
    """One JSON-RPC request: its method (for metrics and messages) and its typed body."""

    method: str
    body: Body


def _invalid(message: str) -> ChainError:
    return ChainError(RPC, f"Invalid params: {message}", code=INVALID_PARAMS)


def level(commitment: Commitment) -> CommitmentLevel:
    return _LEVELS[commitment]


def signature(value: Signature | str) -> Signature:
    if isinstance(value, Signature):
        return value
    try:
        return Signature.from_string(value)
    except ValueError:
        raise _invalid(f"{value[:100]!r} is not a signature") from None


def genesis_hash() -> Call:
    return Call("getGenesisHash", GetGenesisHash(next(_ids)))


def block_height(commitment: Commitment) -> Call:
    config = RpcContextConfig(commitment=level(commitment))
    return Call("getBlockHeight", GetBlockHeight(config, next(_ids)))


def latest_blockhash(commitment: Commitment) -> Call:
    config = RpcContextConfig(commitment=level(commitment))
    return Call("getLatestBlockhash", GetLatestBlockhash(config, next(_ids)))


def signature_statuses(signatures: Sequence[Signature | str]) -> Call:
    parsed = [signature(value) for value in signatures]
    config = RpcSignatureStatusConfig(search_transaction_history=True)
    return Call("getSignatureStatuses", GetSignatureStatuses(parsed, config, next(_ids)))


def transaction(value: Signature | str, commitment: Commitment) -> Call:
    config = RpcTransactionConfig(
        encoding=UiTransactionEncoding.Json,
        commitment=level(commitment),
        max_supported_transaction_version=0,
    )
    return Call("getTransaction", GetTransaction(signature(value), config, next(_ids)))


def account_info(address: Pubkey, commitment: Commitment) -> Call:
    config = RpcAccountInfoConfig(encoding=UiAccountEncoding.Base64, commitment=level(commitment))
    return Call("getAccountInfo", GetAccountInfo(address, config, next(_ids)))


def multiple_accounts(addresses: Sequence[Pubkey], commitment: Commitment) -> Call:
    config = RpcAccountInfoConfig(encoding=UiAccountEncoding.Base64, commitment=level(commitment))
    return Call("getMultipleAccounts", GetMultipleAccounts(list(addresses), config, next(_ids)))


def token_largest_accounts(mint: Pubkey, commitment: Commitment) -> Call:
    body = GetTokenLargestAccounts(mint, level(commitment), next(_ids))
    return Call("getTokenLargestAccounts", body)


def balance(address: Pubkey, commitment: Commitment) -> Call:
    config = RpcContextConfig(commitment=level(commitment))
    return Call("getBalance", GetBalance(address, config, next(_ids)))


def airdrop(address: Pubkey, lamports: int, commitment: Commitment) -> Call:
    config = RpcRequestAirdropConfig(commitment=level(commitment))
    return Call("requestAirdrop", RequestAirdrop(address, lamports, config, next(_ids)))


def send(tx_bytes: bytes, preflight_commitment: Commitment) -> Call:
    """No preflight and maxRetries 0: chainworker rebroadcasts itself. (SendRawTransaction
    always says `"encoding": "base64"`; its config takes no encoding at run time.)"""
    config = RpcSendTransactionConfig(
        skip_preflight=True, preflight_commitment=level(preflight_commitment), max_retries=0
    )
    return Call("sendTransaction", SendRawTransaction(tx_bytes, config, next(_ids)))


def simulate(tx: VersionedTransaction, commitment: Commitment) -> Call:
    """With the latest blockhash and no signature check."""
    config = RpcSimulateTransactionConfig(
        sig_verify=False, replace_recent_blockhash=True, commitment=level(commitment)
    )
    return Call("simulateTransaction", SimulateVersionedTransaction(tx, config, next(_ids)))


def prioritization_fees(accounts: Sequence[Pubkey]) -> Call:
    body = GetRecentPrioritizationFees(list(accounts), next(_ids))
    return Call("getRecentPrioritizationFees", body)
