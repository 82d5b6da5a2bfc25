"""Plain views of RPC answers, decoded from JSON-RPC results.

Each decoder takes the `result` member of an answer (the envelope was read by `endpoints`).
Where one of solders' typed responses fits, it decodes the result, and the values it gives are
then checked as before (ranges, plausibility). Some do not fit, and those results are read
from the JSON here:

- signature statuses, transactions and simulations carry a transaction error, which solders
  only decodes for the variants it knows: one a newer cluster adds would make every answer
  about that transaction unreadable, and its confirmation would never be decided;
  `lifecycle.observe.describe_error` reads any error;
- solders' typed statuses also require the deprecated `status` member;
- `RpcBlockhash.blockhash` and `RpcTokenAccountBalance.address` are decoded on first access,
  and a malformed one panics instead of raising.

Decoders raise ValueError / TypeError / KeyError on ill-shaped input; the RPC client turns
those into ChainError(kind="bad_response").
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ParamSpec, Protocol, TypeVar

from solders.hash import Hash, ParseHashError
from solders.pubkey import Pubkey
from solders.rpc.responses import (
    GetAccountInfoResp,
    GetBalanceResp,
    GetBlockHeightResp,
    GetGenesisHashResp,
    GetMultipleAccountsResp,
    GetRecentPrioritizationFeesResp,
    RequestAirdropResp,
    SendTransactionResp,
)
from solders.signature import Signature

from chainworker.chain import group, token2022
from chainworker.lifecycle.model import Commitment
from chainworker.lifecycle.observe import custom_program_error, describe_error

_COMMITMENTS = frozenset(level.value for level in Commitment)


@dataclass(frozen=True)
class TxErrorView:
    """An on-chain transaction error.

    `code` and `message` are those of `lifecycle.observe.describe_error` ("AccountInUse",
    "InstructionError:2:Custom:0"); `custom_code` is the program's number for Custom errors
    (Token-2022: 0 already in use, 1 insufficient funds).
    """

    code: str
    message: str
    instruction_index: int | None = None
    custom_code: int | None = None


@dataclass(frozen=True)
class SignatureStatusView:
    slot: int
    confirmations: int | None
    err: TxErrorView | None
    confirmation_status: str | None


@dataclass(frozen=True)
class SimulationView:
    units_consumed: int
    err: TxErrorView | None
    logs: tuple[str, ...]


@dataclass(frozen=True)
class TransactionView:
    slot: int
    block_time: int | None
    err: TxErrorView | None
    logs: tuple[str, ...]
    fee: int | None


@dataclass(frozen=True)
class AccountView:
    owner: Pubkey
    lamports: int
    data: bytes


@dataclass(frozen=True)
class MintState:
    address: Pubkey
    program: Pubkey
    supply: int
    decimals: int
    mint_authority: Pubkey | None
    freeze_authority: Pubkey | None
    permanent_delegate: Pubkey | None
    metadata: token2022.TokenMetadata | None
    close_authority: Pubkey | None = None  # MintCloseAuthority; None on a mint without it
    groups: group.GroupExtensions = field(default_factory=group.GroupExtensions)


# Slots, heights and lamports fit PostgreSQL's bigint; anything larger is garbage.
MAX_INTEGER = 2**63 - 1
MAX_CONFIRMATIONS = 2**32


def _int(value: Any, ceiling: int = MAX_INTEGER) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"expected an integer, got {type(value).__name__}")
    if not 0 <= value <= ceiling:
        raise ValueError(f"integer {value} is out of range")
    return value


def _opt_int(value: Any) -> int | None:
    return None if value is None else _int(value)


def _value(result: Any) -> Any:
    """The `value` of a result with context."""
    if not isinstance(result, dict) or "value" not in result:
        raise TypeError("result has no value")
    return result["value"]


class _Response(Protocol):
    @staticmethod
    def from_json(raw: str) -> object: ...


R = TypeVar("R", bound=_Response)
P = ParamSpec("P")
V = TypeVar("V")


def _is_panic(error: BaseException) -> bool:
    """A Rust panic inside solders: pyo3 raises it as a BaseException, past `except Exception`."""
    kind = type(error)
    return kind.__module__ == "pyo3_runtime" and kind.__name__ == "PanicException"


def _no_panics(decode: Callable[P, V]) -> Callable[P, V]:
    """A decoder whose solders panics are ValueErrors, like any other ill-shaped answer."""

    @functools.wraps(decode)
    def guarded(*args: P.args, **kwargs: P.kwargs) -> V:
        try:
            return decode(*args, **kwargs)
        except BaseException as error:
            if _is_panic(error):
                raise ValueError(f"solders could not decode it: {error}") from None
            raise

    return guarded


def _typed(response: type[R], result: Any) -> R:
    """`result` decoded by solders' typed `response`.

    The envelope is rebuilt around the result alone: solders never sees an error member (those
    were handled, and some make it panic) nor anything the standard library read differently.
    """
    raw = json.dumps({"jsonrpc": "2.0", "id": 0, "result": result})
    try:
        parsed = response.from_json(raw)
    except Exception as error:  # solders.SerdeJSONError: wrong types, missing members
        raise ValueError(f"not a {response.__name__} result: {error}") from None
    if not isinstance(parsed, response):
        raise TypeError(f"not a {response.__name__} result")
    return parsed


@_no_panics
def genesis_hash(result: Any) -> str:
    return str(_typed(GetGenesisHashResp, result).value)


@_no_panics
def block_height(result: Any) -> int:
    """Any u64: whether a height can be believed is `lifecycle.heights`' call."""
    return _typed(GetBlockHeightResp, result).value


@_no_panics
def balance(result: Any) -> int:
    return _int(_typed(GetBalanceResp, result).value)


@_no_panics
def sent(result: Any) -> Signature:
    """The signature a sendTransaction answer names."""
    return _typed(SendTransactionResp, result).value


@_no_panics
def airdropped(result: Any) -> Signature:
    return _typed(RequestAirdropResp, result).value


def tx_error(err: Any) -> TxErrorView | None:
    if err is None:
        return None
    if not isinstance(err, str | dict):
        raise TypeError("transaction error is neither a name nor an object")
    code, message = describe_error(err)
    index: int | None = None
    if isinstance(err, dict) and isinstance(err.get("InstructionError"), list):
        first = err["InstructionError"][0]
        index = first if isinstance(first, int) and not isinstance(first, bool) else None
    return TxErrorView(code, message, index, custom_program_error(code))


def blockhash(result: Any) -> tuple[Hash, int]:
    value = _value(result)
    try:
        parsed = Hash.from_string(value["blockhash"])
    except ParseHashError:  # not a ValueError: it would escape the decode-error handling
        raise ValueError("the blockhash is not a base58 hash") from None
    return parsed, _int(value["lastValidBlockHeight"])


@dataclass(frozen=True)
class ChainRead:
    """One endpoint's view for one confirmation round: its block height, then statuses."""

    endpoint: str
    height: int
    statuses: list[SignatureStatusView | None]


@dataclass(frozen=True)
class StatusPage:
    """One getSignatureStatuses answer: the slot it was read at, and the statuses."""

    context_slot: int
    statuses: list[SignatureStatusView | None]


def signature_statuses(result: Any, expected: int) -> StatusPage:
    """A whole answer, or an error: no status may come from a slot after the answer's own,
    and every number must be one a cluster can have (a slot of 2**63 is garbage)."""
    if not isinstance(result, dict) or not isinstance(result.get("context"), dict):
        raise TypeError("result has no context")
    context_slot = _int(result["context"].get("slot"))
    value = _value(result)
    if not isinstance(value, list) or len(value) != expected:
        raise ValueError(f"expected {expected} statuses")
    views: list[SignatureStatusView | None] = []
    for item in value:
        if item is None:
            views.append(None)
            continue
        if not isinstance(item, dict):
            raise TypeError("a status is not an object")
        status = item.get("confirmationStatus")
        if status is not None and status not in _COMMITMENTS:
            raise ValueError(f"unknown confirmation status {status!r}")
        slot = _int(item["slot"])
        if slot > context_slot:
            raise ValueError(f"a status from slot {slot}, after the answer's slot {context_slot}")
        confirmations = item.get("confirmations")
        views.append(
            SignatureStatusView(
                slot=slot,
                confirmations=None if confirmations is None
                else _int(confirmations, MAX_CONFIRMATIONS),
                err=tx_error(item.get("err")),
                confirmation_status=status,
            )
        )
    return StatusPage(context_slot, views)


def _logs(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise TypeError("logs are not a list")
    return tuple(str(line) for line in value)


def simulation(result: Any) -> SimulationView:
    value = _value(result)
    return SimulationView(
        units_consumed=_int(value.get("unitsConsumed") or 0),
        err=tx_error(value.get("err")),
        logs=_logs(value.get("logs")),
    )


@_no_panics
def prioritization_fees(result: Any) -> list[int]:
    fees = _typed(GetRecentPrioritizationFeesResp, result).value
    return [_int(fee.prioritization_fee) for fee in fees]


@_no_panics
def account(result: Any) -> AccountView | None:
    """The account (`solders.account.Account`), its data decoded from base64 by solders."""
    found = _typed(GetAccountInfoResp, result).value
    if found is None:
        return None
    return AccountView(owner=found.owner, lamports=_int(found.lamports), data=bytes(found.data))


@_no_panics
def accounts(result: Any, expected: int) -> list[AccountView | None]:
    """getMultipleAccounts: one entry per address asked, in order (None: no account)."""
    found = _typed(GetMultipleAccountsResp, result).value
    if len(found) != expected:
        raise ValueError(f"expected {expected} accounts, got {len(found)}")
    return [
        None if item is None
        else AccountView(owner=item.owner, lamports=_int(item.lamports), data=bytes(item.data))
        for item in found
    ]


def largest_token_accounts(result: Any) -> list[tuple[Pubkey, int]]:
    value = _value(result)
    if not isinstance(value, list):
        raise TypeError("largest accounts are not a list")
    return [(Pubkey.from_string(item["address"]), int(item["amount"])) for item in value]


def transaction(result: Any) -> TransactionView | None:
    if result is None:
        return None
    meta = result.get("meta") or {}
    return TransactionView(
        slot=_int(result["slot"]),
        block_time=_opt_int(result.get("blockTime")),
        err=tx_error(meta.get("err")),
        logs=_logs(meta.get("logMessages")),
        fee=_opt_int(meta.get("fee")),
    )


def mint_state(address: Pubkey, view: AccountView) -> MintState:
    parsed = token2022.parse_mint(view.data)
    return MintState(
        address=address,
        program=view.owner,
        supply=parsed.base.supply,
        decimals=parsed.base.decimals,
        mint_authority=parsed.base.mint_authority,
        freeze_authority=parsed.base.freeze_authority,
        permanent_delegate=parsed.permanent_delegate,
        metadata=parsed.metadata,
        close_authority=parsed.close_authority,
        groups=group.parse_group_extensions(view.data),
    )
