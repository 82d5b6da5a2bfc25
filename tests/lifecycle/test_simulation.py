"""Whole requests driven through next_action over random cluster behaviour."""

from __future__ import annotations

from hypothesis import event, given, settings
from hypothesis import strategies as st

from chainworker.lifecycle.decide import Confirm, Expire, Fail, Rebroadcast, RecheckExpiry, Replace
from chainworker.lifecycle.model import OUTCOME_STATUSES, Policy, TxStatus
from tests.lifecycle.simulator import simulate
from tests.lifecycle.strategies import policies

SIMULATION = settings(max_examples=250, deadline=None)


@SIMULATION
@given(st.data(), policies)
def test_each_request_reaches_exactly_one_outcome(data: st.DataObject, policy: Policy) -> None:
    run = simulate(data, policy)
    assert run.finished, "the request never settled"
    event(f"outcome {run.statuses[-1].value} after {len(run.attempts)} attempt(s)")
    if any(a.vanished for a in run.attempts):
        event("an attempt vanished with its fork")
    outcomes = [s for s in run.statuses if s in OUTCOME_STATUSES]
    assert len(outcomes) == 1
    assert all(s is TxStatus.REPLACED for s in run.statuses[:-1])
    assert run.statuses[-1] in OUTCOME_STATUSES


@SIMULATION
@given(st.data(), policies)
def test_never_more_attempts_than_max_retries_plus_one(data: st.DataObject, policy: Policy) -> None:
    run = simulate(data, policy)
    assert 1 <= len(run.attempts) <= policy.max_retries + 1
    assert [a.tx.attempt for a in run.attempts] == list(range(1, len(run.attempts) + 1))


@SIMULATION
@given(st.data(), policies)
def test_never_expire_what_can_still_land_or_is_known(data: st.DataObject, policy: Policy) -> None:
    run = simulate(data, policy)
    for step in run.steps:
        if isinstance(step.action, Expire | Replace | RecheckExpiry | Rebroadcast):
            assert step.observed is None
        if isinstance(step.action, Expire | Replace | RecheckExpiry):
            assert step.height > step.tx.last_valid_block_height
        if isinstance(step.action, Expire | Replace):
            assert step.tx.expiry_check_pending
        if isinstance(step.action, Rebroadcast):
            assert step.height <= step.tx.last_valid_block_height
    # An attempt that landed (and was not lost with a fork) is never given up on.
    for attempt in run.attempts:
        if attempt.landed_for_good():
            assert attempt.tx.status in (TxStatus.CONFIRMED, TxStatus.FAILED)
    if run.attempts[-1].tx.status is TxStatus.EXPIRED:
        assert not any(a.landed_for_good() for a in run.attempts)


@SIMULATION
@given(st.data(), policies)
def test_confirm_and_fail_follow_what_was_observed(data: st.DataObject, policy: Policy) -> None:
    run = simulate(data, policy)
    for step in run.steps:
        if isinstance(step.action, Confirm | Fail):
            assert step.observed is not None
            assert step.observed.confirmation_status >= policy.target
            assert step.action.slot == step.observed.slot
        if isinstance(step.action, Confirm):
            assert step.observed is not None and step.observed.err_code is None
        if isinstance(step.action, Fail):
            assert step.observed is not None
            assert step.action.code == step.observed.err_code
            assert step.action.message == step.observed.err_message
    final = run.attempts[-1]
    if final.landed_for_good():
        expected = TxStatus.FAILED if final.fate.err_code else TxStatus.CONFIRMED
        assert run.statuses[-1] is expected
