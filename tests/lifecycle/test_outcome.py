"""The retry budget, the outbox event of each end of a request, and reconcile verdicts."""

from __future__ import annotations

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
from chainworker.lifecycle.model import (
    Commitment,
    ObservedStatus,
    Policy,
    RequestStatus,
    TxOp,
    TxSnapshot,
    TxStatus,
)
from chainworker.lifecycle.outcome import (
    ReconcileVerdict,
    outbox_event_type,
    reconcile,
    verdict_for,
)
from chainworker.lifecycle.transitions import apply_action, start_attempt
from tests.lifecycle.strategies import observations, policies, snapshots

S = TxStatus
POLICY = Policy(max_retries=1, target=Commitment.CONFIRMED)


def test_the_retry_budget_is_max_retries_plus_one_attempts() -> None:
    assert POLICY.retries_left(1)
    assert not POLICY.retries_left(2)
    assert not Policy(max_retries=0).retries_left(1)


@pytest.mark.parametrize(
    ("op", "status", "event"),
    [
        (TxOp.MINT, RequestStatus.CONFIRMED, "ticket.minted"),
        (TxOp.TRANSFER, RequestStatus.CONFIRMED, "ticket.transferred"),
        (TxOp.BURN, RequestStatus.CONFIRMED, "ticket.burned"),
        (TxOp.BURN, RequestStatus.EXPIRED, "ticket.chain_failed"),
        (TxOp.MINT, RequestStatus.FAILED, "ticket.chain_failed"),
        (TxOp.TRANSFER, RequestStatus.REFUSED, "ticket.chain_failed"),
        (TxOp.MINT, RequestStatus.ABANDONED, "ticket.chain_failed"),
        (TxOp.MINT, RequestStatus.QUEUED, None),
        (TxOp.BURN, RequestStatus.SUBMITTED, None),
    ],
)
def test_each_end_of_a_request_tells_the_ticket_service(
    op: TxOp, status: RequestStatus, event: str | None
) -> None:
    assert outbox_event_type(op, status) == event


def landed(level: Commitment, err: str | None = None) -> ObservedStatus:
    return ObservedStatus(slot=7, confirmation_status=level, err_code=err, err_message=err)


def test_reconcile_classifies_stuck_attempts() -> None:
    stuck = start_attempt(1, last_valid_block_height=100, sent_at=0.0)
    past, valid = 101, 100

    def verdict(reads: list[ObservedStatus | None], height: int, tx: TxSnapshot = stuck) -> str:
        return reconcile(tx, reads, height, 1_000.0, POLICY).verdict

    assert verdict([landed(Commitment.FINALIZED)], past) == ReconcileVerdict.CONFIRM
    assert verdict([landed(Commitment.CONFIRMED, "Custom:1")], past) == ReconcileVerdict.FAIL
    assert verdict([landed(Commitment.PROCESSED)], past) == ReconcileVerdict.WAIT
    assert verdict([None], valid) == ReconcileVerdict.WAIT
    assert verdict([None], past) == ReconcileVerdict.RECHECK
    assert verdict([None, None], past) == ReconcileVerdict.RETRY
    assert verdict([None, landed(Commitment.CONFIRMED)], past) == ReconcileVerdict.CONFIRM
    last = start_attempt(2, last_valid_block_height=100, sent_at=0.0)
    assert verdict([None, None], past, last) == ReconcileVerdict.EXPIRE
    with pytest.raises(ValueError):
        reconcile(stuck, [], past, 0.0, POLICY)


def test_reconcile_keeps_the_expiry_mark_it_used() -> None:
    stuck = start_attempt(1, last_valid_block_height=100, sent_at=0.0)
    decision = reconcile(stuck, [None, None], 101, 0.0, POLICY)
    assert decision.action == Replace(2)
    assert decision.tx.expiry_check_pending


@settings(max_examples=300, deadline=None)
@given(snapshots, st.lists(observations, min_size=1, max_size=3), st.integers(0, 1_100), policies)
def test_reconcile_agrees_with_next_action(
    tx: TxSnapshot,
    reads: list[ObservedStatus | None],
    height: int,
    policy: Policy,
) -> None:
    decision = reconcile(tx, reads, height, 5_000.0, policy)
    # Replaying next_action over the reads by hand ends at the same action.
    current, action = tx, next_action(tx, reads[0], height, 5_000.0, policy)
    for read in reads[1:]:
        if action != RecheckExpiry():
            break
        current = apply_action(current, action, 5_000.0)
        action = next_action(current, read, height, 5_000.0, policy)
    assert decision.action == action
    assert decision.verdict is verdict_for(action)
    if decision.verdict in (ReconcileVerdict.RETRY, ReconcileVerdict.EXPIRE):
        assert height > tx.last_valid_block_height
        assert sum(r is None for r in reads) >= (1 if tx.expiry_check_pending else 2)


def test_verdicts_cover_every_action() -> None:
    assert verdict_for(Confirm(1)) is ReconcileVerdict.CONFIRM
    assert verdict_for(Fail("c", "m", 1)) is ReconcileVerdict.FAIL
    assert verdict_for(Expire()) is ReconcileVerdict.EXPIRE
    assert verdict_for(Replace(2)) is ReconcileVerdict.RETRY


def test_apply_action_records_sends_and_marks() -> None:
    never_sent = start_attempt(1, last_valid_block_height=10)
    sent = apply_action(never_sent, Rebroadcast(), 3.0)
    assert sent.last_sent_at == 3.0 and sent.last_rebroadcast_at is None
    again = apply_action(sent, Rebroadcast(), 5.0)
    assert again.last_sent_at == 3.0 and again.last_rebroadcast_at == 5.0
    marked = apply_action(again, RecheckExpiry(), 6.0)
    assert marked.expiry_check_pending
    seen = apply_action(marked, MarkConfirming(9), 7.0)
    assert seen.status is S.CONFIRMING and not seen.expiry_check_pending
    assert apply_action(seen, Wait(WaitReason.CONFIRMING), 8.0) == seen
    assert apply_action(seen, Confirm(9), 8.0).status is S.CONFIRMED
