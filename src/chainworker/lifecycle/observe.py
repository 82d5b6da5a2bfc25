"""From a `getSignatureStatuses` entry (JSON-RPC shape) to an `ObservedStatus`.

Takes the decoded JSON of one entry of `result.value` (for a solders
`TransactionStatus`, `json.loads(status.to_json())`). Error codes are compact and
stable, e.g. `InstructionError:2:Custom:0` (a second mint: the account is already
in use) or `InstructionError:3:Custom:1` (a replayed transfer or burn: insufficient
funds), so they can be stored, matched and counted.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from chainworker.lifecycle.model import Commitment, FailureReason, ObservedStatus

_CUSTOM_CODE = re.compile(r"(?:^|:)Custom:(\d+)$")


def observed_from_rpc(entry: Mapping[str, Any] | None) -> ObservedStatus | None:
    """One entry of `getSignatureStatuses` (None when the signature is unknown)."""
    if entry is None:
        return None
    err = entry.get("err")
    code, message = describe_error(err) if err is not None else (None, None)
    return ObservedStatus(
        slot=int(entry["slot"]),
        confirmation_status=_commitment(entry),
        err_code=code,
        err_message=message,
    )


def observed_status(
    slot: int,
    confirmation_status: str | None,
    confirmations: int | None,
    err_code: str | None = None,
    err_message: str | None = None,
) -> ObservedStatus:
    """The same decoding for an entry already split into fields (the chain layer's view)."""
    level = {"confirmationStatus": confirmation_status, "confirmations": confirmations}
    return ObservedStatus(
        slot=slot, confirmation_status=_commitment(level), err_code=err_code,
        err_message=err_message,
    )


def describe_error(err: object) -> tuple[str, str]:
    """A transaction error (JSON-RPC shape) as (code, message)."""
    if isinstance(err, str):
        return err, err
    if isinstance(err, Mapping) and len(err) == 1:
        ((name, detail),) = err.items()
        if name == "InstructionError" and isinstance(detail, list) and len(detail) == 2:
            index, inner = detail
            inner_code, inner_message = _describe_instruction_error(inner)
            return (
                f"InstructionError:{index}:{inner_code}",
                f"instruction {index} failed: {inner_message}",
            )
        return str(name), f"{name}: {json.dumps(detail, sort_keys=True, default=str)}"
    text = json.dumps(err, sort_keys=True, default=str)
    return "Unrecognized", text


def custom_program_error(code: str) -> int | None:
    """The custom program error number in a code from `describe_error`, if any."""
    match = _CUSTOM_CODE.search(code)
    return int(match.group(1)) if match else None


# Top-level TransactionError names and InstructionError names that have a reason of their own.
_TRANSACTION_REASONS: dict[str, FailureReason] = {
    "InsufficientFundsForFee": FailureReason.INSUFFICIENT_LAMPORTS,
    "InsufficientFundsForRent": FailureReason.INSUFFICIENT_LAMPORTS,
    "BlockhashNotFound": FailureReason.BLOCKHASH_NOT_FOUND,
    "SignatureFailure": FailureReason.SIGNATURE_INVALID,
    "AccountNotFound": FailureReason.ACCOUNT_NOT_FOUND,
    "ProgramAccountNotFound": FailureReason.ACCOUNT_NOT_FOUND,
    "InvalidAccountForFee": FailureReason.INVALID_ACCOUNT,
}
_INSTRUCTION_REASONS: dict[str, FailureReason] = {
    "AccountAlreadyInitialized": FailureReason.ALREADY_IN_USE,
    "InsufficientFunds": FailureReason.INSUFFICIENT_FUNDS,
    "ComputationalBudgetExceeded": FailureReason.COMPUTE_EXCEEDED,
    "InvalidAccountData": FailureReason.INVALID_ACCOUNT,
    "IncorrectProgramId": FailureReason.INVALID_ACCOUNT,
    "InvalidAccountOwner": FailureReason.INVALID_ACCOUNT,
    "MissingRequiredSignature": FailureReason.SIGNATURE_INVALID,
}


def failure_reason(code: str) -> FailureReason:
    """The bounded reason for a code from `describe_error`.

    Measured on the localnet: a second mint fails with Custom 0 (the system program's
    "already in use"), a replayed transfer or burn with Custom 1 (Token-2022's
    InsufficientFunds).
    """
    name, _, rest = code.partition(":")
    if name != "InstructionError":
        return _TRANSACTION_REASONS.get(name, FailureReason.OTHER)
    custom = custom_program_error(code)
    if custom == 0:
        return FailureReason.ALREADY_IN_USE
    if custom == 1:
        return FailureReason.INSUFFICIENT_FUNDS
    inner = rest.partition(":")[2].partition(":")[0]
    return _INSTRUCTION_REASONS.get(inner, FailureReason.PROGRAM_ERROR)


def _describe_instruction_error(inner: object) -> tuple[str, str]:
    if isinstance(inner, str):
        return inner, inner
    if isinstance(inner, Mapping) and len(inner) == 1:
        ((name, detail),) = inner.items()
        if name == "Custom" and isinstance(detail, int):
            return f"Custom:{detail}", f"custom program error: {detail:#x}"
        return str(name), f"{name}: {detail}"
    return "Unrecognized", json.dumps(inner, sort_keys=True, default=str)


def _commitment(entry: Mapping[str, Any]) -> Commitment:
    level = entry.get("confirmationStatus")
    if level is not None:
        return Commitment(level)
    # Nodes that omit confirmationStatus: null confirmations means rooted; a count
    # alone does not say whether a supermajority voted, so claim no more than seen.
    if entry.get("confirmations", 0) is None:
        return Commitment.FINALIZED
    return Commitment.PROCESSED
