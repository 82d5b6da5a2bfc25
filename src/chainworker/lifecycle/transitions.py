"""How an attempt's recorded fields change when an action is carried out.

The confirmation round writes what `apply_action` returns for the reads it made
(`db.live_transactions.record_observations`), settling ends an attempt with the status it
returns, and reconcile replays a sequence of decisions through it.
"""

from __future__ import annotations

from dataclasses import replace

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
)
from chainworker.lifecycle.model import TxSnapshot, TxStatus


def apply_action(tx: TxSnapshot, action: Action, now: float) -> TxSnapshot:
    """The attempt after `action` was carried out at time `now`.

    Replace marks this attempt replaced; the new attempt comes from `start_attempt`.
    """
    match action:
        case Wait() | Confirm() | Fail() | Expire() | Replace():
            if action.sets_status is None:
                return tx
            return replace(tx, status=action.sets_status)
        case Rebroadcast():
            if tx.last_sent_at is None:
                return replace(tx, last_sent_at=now)
            return replace(tx, last_rebroadcast_at=now)
        case MarkConfirming():
            return replace(tx, status=TxStatus.CONFIRMING, expiry_check_pending=False)
        case RecheckExpiry():
            return replace(tx, expiry_check_pending=True)


def start_attempt(
    attempt: int,
    last_valid_block_height: int,
    sent_at: float | None = None,
) -> TxSnapshot:
    """A freshly recorded attempt (status pending); `sent_at` once its bytes went out."""
    return TxSnapshot(
        status=TxStatus.PENDING,
        attempt=attempt,
        last_valid_block_height=last_valid_block_height,
        last_sent_at=sent_at,
    )
