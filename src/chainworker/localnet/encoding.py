"""Accounts and transactions in the JSON shapes a validator answers with."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

import base58
from solders.account import Account
from solders.message import MessageV0
from solders.pubkey import Pubkey

from chainworker.localnet.errors import invalid_params
from chainworker.localnet.ledger import LandedTransaction
from chainworker.localnet.messages import writable_keys
from chainworker.localnet.tokens import (
    TOKEN_PROGRAMS,
    is_mint,
    is_token_account,
    parse_mint,
    parse_token_account,
    parsed_mint,
    parsed_token_account,
    program_name,
)

RENT_EXEMPT_EPOCH = 18_446_744_073_709_551_615  # u64::MAX, as validators report it
MAX_BASE58_BYTES = 128
ACCOUNT_ENCODINGS = ("base64", "base58", "jsonParsed", "binary")
TRANSACTION_ENCODINGS = ("json", "jsonParsed", "base64", "base58", "binary")

MintLookup = Callable[[Pubkey], Account | None]


def slice_data(data: bytes, data_slice: Any) -> bytes:
    if data_slice is None:
        return data
    if not isinstance(data_slice, dict):
        raise invalid_params("Invalid params: dataSlice must be an object.")
    offset, length = data_slice.get("offset"), data_slice.get("length")
    if not isinstance(offset, int) or not isinstance(length, int) or offset < 0 or length < 0:
        raise invalid_params("Invalid params: dataSlice needs non-negative offset and length.")
    return data[offset : offset + length]


def _parsed(account: Account, mints: MintLookup) -> dict[str, Any] | None:
    if account.owner not in TOKEN_PROGRAMS:
        return None
    if is_token_account(account):
        mint = mints(parse_token_account(account.data).mint)
        if mint is None or not is_mint(mint):
            return None
        parsed = parsed_token_account(account, parse_mint(mint.data).decimals)
    elif is_mint(account):
        parsed = parsed_mint(account)
    else:
        return None
    return {"program": program_name(account.owner), "parsed": parsed, "space": len(account.data)}


def encode_account(
    account: Account | None, encoding: str, data_slice: Any, mints: MintLookup
) -> dict[str, Any] | None:
    if account is None:
        return None
    raw = account.data
    data: Any
    if encoding == "jsonParsed" and data_slice is None:
        data = _parsed(account, mints)
        if data is None:
            data = [base64.b64encode(raw).decode(), "base64"]
    elif encoding == "base58" or encoding == "binary":
        sliced = slice_data(raw, data_slice)
        if len(sliced) > MAX_BASE58_BYTES:
            raise invalid_params(
                "Encoded binary (base 58) data should be less than 129 bytes, "
                "please use Base64 encoding."
            )
        text = base58.b58encode(sliced).decode()
        data = text if encoding == "binary" else [text, "base58"]
    elif encoding in ("base64", "jsonParsed"):
        data = [base64.b64encode(slice_data(raw, data_slice)).decode(), "base64"]
    else:
        raise invalid_params(f"Invalid params: unsupported encoding {encoding}.")
    return {
        "data": data,
        "executable": account.executable,
        "lamports": account.lamports,
        "owner": str(account.owner),
        "rentEpoch": RENT_EXEMPT_EPOCH,
        "space": len(raw),
    }


def _version(record: LandedTransaction) -> Any:
    return 0 if isinstance(record.transaction.message, MessageV0) else "legacy"


def _json_message(record: LandedTransaction, parsed: bool) -> dict[str, Any]:
    message = record.transaction.message
    keys = record.account_keys
    header = message.header
    instructions: list[dict[str, Any]] = []
    for instruction in message.instructions:
        accounts = list(bytes(instruction.accounts))
        data = base58.b58encode(bytes(instruction.data)).decode()
        if parsed:
            instructions.append(
                {
                    "accounts": [keys[i] for i in accounts],
                    "data": data,
                    "programId": keys[instruction.program_id_index],
                    "stackHeight": None,
                }
            )
        else:
            instructions.append(
                {
                    "accounts": accounts,
                    "data": data,
                    "programIdIndex": instruction.program_id_index,
                    "stackHeight": None,
                }
            )
    body: dict[str, Any] = {"instructions": instructions}
    if parsed:
        writable = {str(key) for key in writable_keys(message)}
        signers = header.num_required_signatures
        body["accountKeys"] = [
            {
                "pubkey": key,
                "signer": i < signers,
                "source": "transaction",
                "writable": key in writable,
            }
            for i, key in enumerate(keys)
        ]
    else:
        body["accountKeys"] = keys
        body["header"] = {
            "numReadonlySignedAccounts": header.num_readonly_signed_accounts,
            "numReadonlyUnsignedAccounts": header.num_readonly_unsigned_accounts,
            "numRequiredSignatures": header.num_required_signatures,
        }
    body["recentBlockhash"] = str(message.recent_blockhash)
    if isinstance(message, MessageV0):
        body["addressTableLookups"] = [
            {
                "accountKey": str(lookup.account_key),
                "readonlyIndexes": list(bytes(lookup.readonly_indexes)),
                "writableIndexes": list(bytes(lookup.writable_indexes)),
            }
            for lookup in message.address_table_lookups
        ]
    return body


def encode_transaction_body(record: LandedTransaction, encoding: str) -> Any:
    if encoding == "base64":
        return [base64.b64encode(record.raw).decode(), "base64"]
    if encoding == "base58":
        return [base58.b58encode(record.raw).decode(), "base58"]
    if encoding == "binary":
        return base58.b58encode(record.raw).decode()
    if encoding in ("json", "jsonParsed"):
        return {
            "message": _json_message(record, encoding == "jsonParsed"),
            "signatures": [str(sig) for sig in record.transaction.signatures],
        }
    raise invalid_params(f"Invalid params: unsupported encoding {encoding}.")


def encode_meta(record: LandedTransaction) -> dict[str, Any]:
    status = {"Ok": None} if record.err is None else {"Err": record.err}
    return {
        "computeUnitsConsumed": record.compute_units,
        "err": record.err,
        "fee": record.fee,
        "innerInstructions": [],
        "loadedAddresses": {"readonly": [], "writable": []},
        "logMessages": record.logs,
        "postBalances": record.post_balances,
        "postTokenBalances": [],
        "preBalances": record.pre_balances,
        "preTokenBalances": [],
        "rewards": [],
        "status": status,
    }


def check_version(record: LandedTransaction, max_version: Any) -> None:
    from chainworker.localnet.errors import RpcError

    if _version(record) == 0 and max_version is None:
        raise RpcError(
            -32015,
            "Transaction version (0) is not supported by the requesting client. Please try the "
            "request again with the following configuration parameter: "
            '"maxSupportedTransactionVersion": 0',
        )


def encode_transaction_with_meta(
    record: LandedTransaction, encoding: str, max_version: Any
) -> dict[str, Any]:
    check_version(record, max_version)
    body: dict[str, Any] = {
        "meta": encode_meta(record),
        "transaction": encode_transaction_body(record, encoding),
    }
    if max_version is not None:
        body["version"] = _version(record)
    return body
