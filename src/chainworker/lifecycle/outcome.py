"""The request-level view over a chain of attempts, and the reconcile classification.

A request (mint a ticket, execute a transfer, burn a ticket) makes one attempt,
plus one more each time an attempt certainly expired while retries remained. The
request's outcome is read off its attempts' statuses; the sweeper asks
`needs_enqueue`; operators' reconcile asks `reconcile`, which replays
`decide.next_action` over fresh status reads rather than restating its rules.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
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
from chainworker.lifecycle.model import ObservedStatus, Policy, TxOp, TxSnapshot, TxStatus
from chainworker.lifecycle.transitions import apply_action


class RequestState(StrEnum):
    """Where a request stands, from its attempts."""

    NO_ATTEMPT = "no_attempt"  # nothing live and no outcome: (re)enqueue it
    LIVE = "live"
    CONFIRMED = "confirmed"
    FAILED = "failed"
    EXPIRED = "expired"

    @property
    def is_outcome(self) -> bool:
        return self in (RequestState.CONFIRMED, RequestState.FAILED, RequestState.EXPIRED)


def request_state(attempt_statuses: Iterable[TxStatus | str]) -> RequestState:
    """The request's state from its attempts' statuses (any order).

    Precedence when rows disagree (only after manual edits or a bug): confirmed, then
    failed, then live, then expired, because a landed transaction is a fact on chain,
    and a live attempt may still land.
    """
    statuses = {TxStatus(s) for s in attempt_statuses}
    if TxStatus.CONFIRMED in statuses:
        return RequestState.CONFIRMED
    if TxStatus.FAILED in statuses:
        return RequestState.FAILED
    if statuses & {TxStatus.PENDING, TxStatus.CONFIRMING}:
        return RequestState.LIVE
    if TxStatus.EXPIRED in statuses:
        return RequestState.EXPIRED
    # No attempt yet, or every attempt was replaced and the next one was never
    # recorded (the worker died in between).
    return RequestState.NO_ATTEMPT


def needs_enqueue(
    attempt_statuses: Iterable[TxStatus | str],
    *,
    idle_seconds: float,
    grace_seconds: float,
) -> bool:
    """The sweeper's test: no live attempt, no outcome, and quiet for longer than the grace.

    `idle_seconds` is the time since the request or its latest attempt last changed; the
    grace keeps the sweeper from racing a job that was enqueued a moment ago.
    """
    return request_state(attempt_statuses) is RequestState.NO_ATTEMPT and (
        idle_seconds >= grace_seconds
    )


def next_attempt_number(attempt_numbers: Iterable[int]) -> int:
    """The number of the attempt to record next (1 for a request without attempts)."""
    return max(attempt_numbers, default=0) + 1


def retries_left(attempt_numbers: Iterable[int], policy: Policy) -> bool:
    """May another attempt be recorded? Never more than `max_retries + 1` attempts."""
    return next_attempt_number(attempt_numbers) <= policy.max_attempts


_OUTBOX_ON_CONFIRM: dict[TxOp, str] = {
    TxOp.MINT: "ticket.minted",
    TxOp.TRANSFER: "ticket.transferred",
    TxOp.BURN: "ticket.burned",
}
OUTBOX_CHAIN_FAILED = "ticket.chain_failed"


def outbox_event_type(op: TxOp, outcome: RequestState) -> str | None:
    """The outbox event for the ticket service when a request reaches `outcome`."""
    if outcome is RequestState.CONFIRMED:
        return _OUTBOX_ON_CONFIRM[op]
    if outcome in (RequestState.FAILED, RequestState.EXPIRED):
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
