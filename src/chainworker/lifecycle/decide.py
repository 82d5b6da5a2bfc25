"""The next step for one live transaction attempt, decided from plain facts.

`next_action` is the whole state machine of an attempt. The confirmation loop
calls it for every live row after each `getSignatureStatuses` batch and does what
it returns; the reconcile CLI calls it (through `outcome.reconcile`) to classify
stuck rows. The rules, in order:

1. A row that is not live needs nothing (`Wait`).
2. The signature is known:
   - at or above the target commitment: `Fail` if it executed with an error,
     else `Confirm`;
   - below it: `MarkConfirming` (once), then `Wait`. A known signature is never
     expired or rebroadcast. An error seen below the target is not final yet: the
     slot may be on a fork that is abandoned.
3. The signature is unknown and the block height is past `last_valid_block_height`
   (the blockhash can no longer land):
   - first time: `RecheckExpiry` (record it, read the status once more);
   - marked already, unknown again: `Replace` while attempts remain, else `Expire`.
   This also covers a transaction that was seen (confirming) and then vanished
   with its fork: it gets the same certainty rule.
4. The signature is unknown and the blockhash is still valid: `Rebroadcast` when
   the bytes were never sent or the interval since the last send elapsed, else
   `Wait`. A timeout alone never expires anything.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import ClassVar

from chainworker.lifecycle.model import (
    ObservedStatus,
    Policy,
    TxSnapshot,
    TxStatus,
)


class WaitReason(StrEnum):
    NOT_LIVE = "not_live"
    CONFIRMING = "confirming"
    REBROADCAST_NOT_DUE = "rebroadcast_not_due"


@dataclass(frozen=True, slots=True)
class Wait:
    """Nothing to do now."""

    reason: WaitReason
    kind: ClassVar[str] = "wait"
    sets_status: ClassVar[TxStatus | None] = None


@dataclass(frozen=True, slots=True)
class Rebroadcast:
    """Send the recorded signed bytes again (`maxRetries=0`); the status stays."""

    kind: ClassVar[str] = "rebroadcast"
    sets_status: ClassVar[TxStatus | None] = None


@dataclass(frozen=True, slots=True)
class MarkConfirming:
    """Seen below the target commitment: status -> confirming, clear any expiry mark."""

    slot: int
    kind: ClassVar[str] = "mark_confirming"
    sets_status: ClassVar[TxStatus | None] = TxStatus.CONFIRMING


@dataclass(frozen=True, slots=True)
class Confirm:
    """Reached the target commitment without error: status -> confirmed, apply the outcome."""

    slot: int
    kind: ClassVar[str] = "confirm"
    sets_status: ClassVar[TxStatus | None] = TxStatus.CONFIRMED


@dataclass(frozen=True, slots=True)
class Fail:
    """Executed with an error at the target commitment: status -> failed, with the error."""

    code: str
    message: str
    slot: int
    kind: ClassVar[str] = "fail"
    sets_status: ClassVar[TxStatus | None] = TxStatus.FAILED


@dataclass(frozen=True, slots=True)
class RecheckExpiry:
    """Height passed and the signature is unknown: set `expiry_check_pending`, read again.

    The second read should use `searchTransactionHistory: true`.
    """

    kind: ClassVar[str] = "recheck_expiry"
    sets_status: ClassVar[TxStatus | None] = None


@dataclass(frozen=True, slots=True)
class Replace:
    """Certainly expired, attempts remain: status -> replaced; record and send attempt
    `next_attempt` with a fresh blockhash, same intent and same mint key."""

    next_attempt: int
    kind: ClassVar[str] = "replace"
    sets_status: ClassVar[TxStatus | None] = TxStatus.REPLACED


@dataclass(frozen=True, slots=True)
class Expire:
    """Certainly expired and no attempts remain: status -> expired, final for the request."""

    kind: ClassVar[str] = "expire"
    sets_status: ClassVar[TxStatus | None] = TxStatus.EXPIRED


Action = Wait | Rebroadcast | MarkConfirming | Confirm | Fail | RecheckExpiry | Replace | Expire


def blockhash_expired(tx: TxSnapshot, block_height: int) -> bool:
    """The attempt's blockhash can no longer land (height read at the policy commitment)."""
    return block_height > tx.last_valid_block_height


def rebroadcast_due(tx: TxSnapshot, now: float, policy: Policy) -> bool:
    last = tx.last_broadcast_at
    return last is None or now - last >= policy.rebroadcast_interval_seconds


def next_action(
    tx: TxSnapshot,
    observed: ObservedStatus | None,
    block_height: int,
    now: float,
    policy: Policy,
) -> Action:
    """Decide what to do with one attempt. See the module docstring for the rules."""
    if not tx.status.is_live:
        return Wait(WaitReason.NOT_LIVE)

    if observed is not None:
        return _decide_known(tx, observed, policy)

    if blockhash_expired(tx, block_height):
        if not tx.expiry_check_pending:
            return RecheckExpiry()
        if policy.retries_left(tx.attempt):
            return Replace(next_attempt=tx.attempt + 1)
        return Expire()

    if rebroadcast_due(tx, now, policy):
        return Rebroadcast()
    return Wait(WaitReason.REBROADCAST_NOT_DUE)


def _decide_known(tx: TxSnapshot, observed: ObservedStatus, policy: Policy) -> Action:
    if observed.confirmation_status >= policy.target:
        if observed.err_code is not None:
            return Fail(
                code=observed.err_code,
                message=observed.err_message or observed.err_code,
                slot=observed.slot,
            )
        return Confirm(slot=observed.slot)
    if tx.status is TxStatus.PENDING or tx.expiry_check_pending:
        return MarkConfirming(slot=observed.slot)
    return Wait(WaitReason.CONFIRMING)
