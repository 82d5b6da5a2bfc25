"""What follows from an attempt's end for its request, and the reconcile classification.

A request (mint a ticket, execute a transfer, burn a ticket) makes one attempt, plus
one more each time an attempt certainly expired while retries remained
(`Policy.retries_left`). When it ends, the ticket service is told (`outbox_event_type`).
Operators' reconcile asks `reconcile`, which replays `decide.next_action` over fresh
status reads rather than restating its rules.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from chainworker.lifecycle.decide import (
    Action,
    Confirm,
    Expire,
    Fail,
    MarkConfirming,
    Rebroadcast,
    RecheckExpiry,
    Replace,
    Wait,
    next_action,
)
from chainworker.lifecycle.model import ObservedStatus, Policy, RequestStatus, TxOp, TxSnapshot
from chainworker.lifecycle.transitions import apply_action

_OUTBOX_ON_CONFIRM: dict[TxOp, str] = {
    TxOp.MINT: "ticket.minted",
    TxOp.TRANSFER: "ticket.transferred",
    TxOp.BURN: "ticket.burned",
    TxOp.METADATA_UPDATE: "ticket.metadata_updated",
    TxOp.VERIFY: "ticket.verified",
}
OUTBOX_CHAIN_FAILED = "ticket.chain_failed"


def outbox_event_type(op: TxOp, status: RequestStatus) -> str | None:
    """The outbox event the ticket service is sent when a request ends with `status`:
    what landed for a confirmed one, `ticket.chain_failed` for one that will not land."""
    if status is RequestStatus.CONFIRMED:
        return _OUTBOX_ON_CONFIRM[op]
    if not status.is_live:  # failed, expired, refused, abandoned
        return OUTBOX_CHAIN_FAILED
    return None


class ReconcileVerdict(StrEnum):
    """What the reconcile CLI does with a stuck attempt."""

    CONFIRM = "confirm"  # landed at the target commitment
    FAIL = "fail"  # landed with an on-chain error
    RETRY = "retry"  # certainly expired, attempts remain: replace it
    EXPIRE = "expire"  # certainly expired, no attempts remain
    WAIT = "wait"  # may still land, or landed below the target
    RECHECK = "recheck"  # height passed, signature unknown: read once more


@dataclass(frozen=True, slots=True)
class ReconcileDecision:
    verdict: ReconcileVerdict
    action: Action
    # The attempt as the reads left it (with the expiry mark when a recheck was used).
    tx: TxSnapshot


def verdict_for(action: Action) -> ReconcileVerdict:
    match action:
        case Confirm():
            return ReconcileVerdict.CONFIRM
        case Fail():
            return ReconcileVerdict.FAIL
        case Replace():
            return ReconcileVerdict.RETRY
        case Expire():
            return ReconcileVerdict.EXPIRE
        case RecheckExpiry():
            return ReconcileVerdict.RECHECK
        case Wait() | Rebroadcast() | MarkConfirming():
            return ReconcileVerdict.WAIT


def reconcile(
    tx: TxSnapshot,
    reads: Sequence[ObservedStatus | None],
    block_height: int,
    now: float,
    policy: Policy,
) -> ReconcileDecision:
    """Classify one attempt from consecutive status reads (oldest first).

    Each read goes through `next_action`; a `RecheckExpiry` consumes the next read, so
    two unknown reads past the height give a certain RETRY/EXPIRE, and one gives RECHECK.
    Pass reads taken with `searchTransactionHistory: true`.
    """
    if not reads:
        raise ValueError("reconcile needs at least one status read")
    current = tx
    action: Action = next_action(current, reads[0], block_height, now, policy)
    for read in reads[1:]:
        if not isinstance(action, RecheckExpiry):
            break
        current = apply_action(current, action, now)
        action = next_action(current, read, block_height, now, policy)
    return ReconcileDecision(verdict_for(action), action, current)
