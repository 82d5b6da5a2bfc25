"""next_action: one example per rule, then the safety properties over random inputs."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chainworker.lifecycle.decide import (
    Confirm,
    Expire,
    Fail,
    MarkConfirming,
    Rebroadcast,
    RecheckExpiry,
    Replace,
    Wait,
    WaitReason,
    next_action,
)
from chainworker.lifecycle.model import Commitment, ObservedStatus, Policy, TxSnapshot, TxStatus
from tests.lifecycle.strategies import observations, policies, snapshots, times

POLICY = Policy(max_retries=2, target=Commitment.CONFIRMED, rebroadcast_interval_seconds=2.0)
LVBH = 1_000


BASE = TxSnapshot(
    status=TxStatus.PENDING, attempt=1, last_valid_block_height=LVBH, last_sent_at=100.0
)


def tx(**changes: Any) -> TxSnapshot:
    return replace(BASE, **changes)


def seen(level: Commitment, err: str | None = None, message: str | None = None) -> ObservedStatus:
    return ObservedStatus(slot=42, confirmation_status=level, err_code=err, err_message=message)


# --- examples, one per rule ------------------------------------------------------


def test_never_sent_is_sent_at_once() -> None:
    assert next_action(tx(last_sent_at=None), None, 10, 100.0, POLICY) == Rebroadcast()


def test_rebroadcast_after_interval_only() -> None:
    assert next_action(tx(), None, 10, 101.0, POLICY) == Wait(WaitReason.REBROADCAST_NOT_DUE)
    assert next_action(tx(), None, 10, 102.0, POLICY) == Rebroadcast()
    recent = tx(last_rebroadcast_at=103.0)
    assert next_action(recent, None, 10, 104.0, POLICY) == Wait(WaitReason.REBROADCAST_NOT_DUE)


def test_no_rebroadcast_once_blockhash_expired() -> None:
    assert next_action(tx(), None, LVBH + 1, 1e6, POLICY) == RecheckExpiry()


def test_height_equal_to_last_valid_can_still_land() -> None:
    assert next_action(tx(expiry_check_pending=True), None, LVBH, 1e6, POLICY) == Rebroadcast()


def test_processed_below_target_marks_confirming_then_waits() -> None:
    assert next_action(tx(), seen(Commitment.PROCESSED), 10, 200.0, POLICY) == MarkConfirming(42)
    confirming = tx(status=TxStatus.CONFIRMING)
    action = next_action(confirming, seen(Commitment.PROCESSED), LVBH + 50, 200.0, POLICY)
    assert action == Wait(WaitReason.CONFIRMING)


def test_seen_clears_a_pending_expiry_check() -> None:
    marked = tx(status=TxStatus.CONFIRMING, expiry_check_pending=True)
    action = next_action(marked, seen(Commitment.PROCESSED), LVBH + 5, 200.0, POLICY)
    assert action == MarkConfirming(42)


def test_target_commitment_confirms() -> None:
    assert next_action(tx(), seen(Commitment.CONFIRMED), 10, 100.0, POLICY) == Confirm(42)
    assert next_action(tx(), seen(Commitment.FINALIZED), LVBH + 9, 100.0, POLICY) == Confirm(42)
    finalized = Policy(target=Commitment.FINALIZED)
    assert next_action(tx(), seen(Commitment.CONFIRMED), 10, 100.0, finalized) == MarkConfirming(42)
    processed = Policy(target=Commitment.PROCESSED)
    assert next_action(tx(), seen(Commitment.PROCESSED), 10, 100.0, processed) == Confirm(42)


def test_error_at_target_fails_with_the_error() -> None:
    observed = seen(Commitment.CONFIRMED, "InstructionError:2:Custom:0", "already in use")
    assert next_action(tx(), observed, 10, 100.0, POLICY) == Fail(
        "InstructionError:2:Custom:0", "already in use", 42
    )


def test_error_below_target_is_not_final_yet() -> None:
    observed = seen(Commitment.PROCESSED, "InstructionError:2:Custom:1", "insufficient funds")
    assert next_action(tx(), observed, 10, 100.0, POLICY) == MarkConfirming(42)


def test_expiry_needs_a_second_unknown_read() -> None:
    first = next_action(tx(), None, LVBH + 1, 500.0, POLICY)
    assert first == RecheckExpiry()
    second = next_action(tx(expiry_check_pending=True), None, LVBH + 1, 500.5, POLICY)
    assert second == Replace(next_attempt=2)


def test_last_attempt_expires() -> None:
    last = tx(attempt=POLICY.max_attempts, expiry_check_pending=True)
    assert next_action(last, None, LVBH + 1, 500.0, POLICY) == Expire()
    no_retries = Policy(max_retries=0)
    assert next_action(tx(expiry_check_pending=True), None, LVBH + 1, 0.0, no_retries) == Expire()


def test_seen_then_vanished_after_fork_follows_the_certainty_rule() -> None:
    vanished = tx(status=TxStatus.CONFIRMING)
    assert next_action(vanished, None, LVBH, 500.0, POLICY) == Rebroadcast()
    assert next_action(vanished, None, LVBH + 1, 500.0, POLICY) == RecheckExpiry()
    marked = tx(status=TxStatus.CONFIRMING, expiry_check_pending=True)
    assert next_action(marked, None, LVBH + 1, 500.0, POLICY) == Replace(2)


@pytest.mark.parametrize("status", [s for s in TxStatus if not s.is_live])
def test_rows_that_are_not_live_need_nothing(status: TxStatus) -> None:
    action = next_action(tx(status=status), seen(Commitment.FINALIZED), LVBH + 1, 0.0, POLICY)
    assert action == Wait(WaitReason.NOT_LIVE)


def test_actions_name_the_status_they_set() -> None:
    assert Confirm(1).sets_status is TxStatus.CONFIRMED
    assert Fail("c", "m", 1).sets_status is TxStatus.FAILED
    assert Replace(2).sets_status is TxStatus.REPLACED
    assert Expire().sets_status is TxStatus.EXPIRED
    assert MarkConfirming(1).sets_status is TxStatus.CONFIRMING
    assert Rebroadcast().sets_status is None
    assert RecheckExpiry().sets_status is None


def test_commitments_are_ordered() -> None:
    assert Commitment.PROCESSED < Commitment.CONFIRMED < Commitment.FINALIZED
    assert sorted(Commitment, reverse=True)[0] is Commitment.FINALIZED


def test_attempts_count_from_one() -> None:
    with pytest.raises(ValueError):
        tx(attempt=0)


# --- properties ----------------------------------------------------------------------

heights = st.integers(min_value=0, max_value=1_100)


@settings(max_examples=400, deadline=None)
@given(snapshots, observations, heights, times, policies)
def test_decision_properties(
    snapshot: TxSnapshot,
    observed: ObservedStatus | None,
    height: int,
    now: float,
    policy: Policy,
) -> None:
    action = next_action(snapshot, observed, height, now, policy)
    can_still_land = height <= snapshot.last_valid_block_height

    if not snapshot.status.is_live:
        assert action == Wait(WaitReason.NOT_LIVE)
        return

    if isinstance(action, Expire | Replace | RecheckExpiry):
        # Never expire while the blockhash can land or the signature is known.
        assert observed is None
        assert not can_still_land
    if isinstance(action, Expire | Replace):
        assert snapshot.expiry_check_pending, "expiry needs one more read after the height passed"
    if isinstance(action, Replace):
        assert action.next_attempt == snapshot.attempt + 1 <= policy.max_retries + 1
    if isinstance(action, Expire):
        assert snapshot.attempt >= policy.max_attempts

    if isinstance(action, Confirm):
        assert observed is not None and observed.err_code is None
        assert observed.confirmation_status >= policy.target
        assert action.slot == observed.slot
    if isinstance(action, Fail):
        assert observed is not None and observed.err_code == action.code
        assert observed.confirmation_status >= policy.target
        assert action.message == (observed.err_message or observed.err_code)
    if observed is not None and observed.confirmation_status >= policy.target:
        assert isinstance(action, Confirm | Fail)

    if isinstance(action, Rebroadcast):
        assert observed is None and can_still_land
        last = snapshot.last_broadcast_at
        assert last is None or now - last >= policy.rebroadcast_interval_seconds
