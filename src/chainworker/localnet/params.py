"""Reading JSON-RPC parameters the way a validator does, with its error messages."""

from __future__ import annotations

import base64
import binascii
from typing import Any

import base58
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.transaction import VersionedTransaction

from chainworker.localnet.errors import invalid_params
from chainworker.localnet.ledger import PACKET_DATA_SIZE, Commitment

MAX_BASE58_SIZE = 1683  # base58 length of a full packet
MAX_BASE64_SIZE = 1644  # base64 length of a full packet
_COMMITMENT_NAMES: dict[str, Commitment] = {
    "processed": "processed",
    "confirmed": "confirmed",
    "finalized": "finalized",
    "recent": "processed",
    "single": "confirmed",
    "singleGossip": "confirmed",
    "root": "finalized",
    "max": "finalized",
}
_TX_TYPE = "solana_transaction::versioned::VersionedTransaction"


def positional(params: Any) -> list[Any]:
    if params is None:
        return []
    if not isinstance(params, list):
        raise invalid_params("Invalid params: invalid type: map, expected a sequence.")
    return params


def required(params: list[Any], index: int, what: str) -> Any:
    if len(params) <= index:
        raise invalid_params(f"`params` should have at least {index + 1} argument(s)")
    return params[index]


def config(params: list[Any], index: int) -> dict[str, Any]:
    value = params[index] if len(params) > index else None
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise invalid_params(
            f"Invalid params: invalid type: {type(value).__name__}, "
            "expected a configuration object."
        )
    return value


def commitment(cfg: dict[str, Any], default: Commitment = "finalized") -> Commitment:
    value = cfg.get("commitment")
    if value is None:
        return default
    if isinstance(value, dict):  # legacy {"commitment": {"commitment": "..."}}
        value = value.get("commitment")
    found = _COMMITMENT_NAMES.get(value) if isinstance(value, str) else None
    if found is None:
        raise invalid_params(f"Invalid params: unknown variant `{value}`.")
    return found


def at_least_confirmed(cfg: dict[str, Any]) -> Commitment:
    level = commitment(cfg)
    if level == "processed":
        raise invalid_params("Method does not support commitment below `confirmed`")
    return level


def pubkey(value: Any) -> Pubkey:
    if not isinstance(value, str):
        raise invalid_params("Invalid params: invalid type: expected a base58 string.")
    try:
        return Pubkey.from_string(value)
    except ValueError:
        raise invalid_params("Invalid param: Invalid") from None


def signature(value: Any) -> Signature:
    if not isinstance(value, str):
        raise invalid_params("Invalid params: invalid type: expected a base58 string.")
    try:
        return Signature.from_string(value)
    except ValueError:
        raise invalid_params("Invalid param: Invalid") from None


def integer(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise invalid_params(f"Invalid params: {what} must be a non-negative integer.")
    return value


def boolean(cfg: dict[str, Any], name: str, default: bool = False) -> bool:
    value = cfg.get(name, default)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise invalid_params(f"Invalid params: {name} must be a boolean.")
    return value


def decode_bytes(value: Any, encoding: str, max_encoded: int | None, what: str) -> bytes:
    if not isinstance(value, str):
        raise invalid_params("Invalid params: invalid type: expected an encoded string.")
    if encoding not in ("base58", "base64"):
        raise invalid_params(
            f"Invalid params: unknown variant `{encoding}`, expected `base58` or `base64`."
        )
    limit = max_encoded
    if limit is None:
        limit = MAX_BASE58_SIZE if encoding == "base58" else MAX_BASE64_SIZE
    if len(value) > limit:
        raise invalid_params(
            f"{encoding} encoded {what} too large: {len(value)} bytes "
            f"(max: encoded/raw {limit}/{PACKET_DATA_SIZE})"
        )
    try:
        if encoding == "base58":
            return base58.b58decode(value)
        return base64.b64decode(value, validate=True)
    except (ValueError, binascii.Error) as error:
        raise invalid_params(f"invalid {encoding} encoding: {error}") from None


def transaction(value: Any, encoding: str) -> tuple[VersionedTransaction, bytes]:
    raw = decode_bytes(value, encoding, None, _TX_TYPE)
    if len(raw) > PACKET_DATA_SIZE:
        raise invalid_params(
            f"decoded {_TX_TYPE} too large: {len(raw)} bytes (max: {PACKET_DATA_SIZE} bytes)"
        )
    try:
        parsed = VersionedTransaction.from_bytes(raw)
    except Exception as error:
        raise invalid_params(f"failed to deserialize {_TX_TYPE}: {error}") from None
    try:
        parsed.sanitize()
    except Exception as error:
        raise invalid_params(f"invalid transaction: {error}") from None
    if not parsed.signatures:
        raise invalid_params("invalid transaction: Transaction has no signatures")
    return parsed, raw
