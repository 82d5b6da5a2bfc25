"""A small pure simulation of one request against a toy cluster, driven by next_action.

The cluster's height advances by drawn amounts; each attempt has a drawn fate: it
never lands, or lands some blocks after its first send (always while its blockhash
is valid), then climbs processed -> confirmed -> finalized one drawn step at a time,
possibly with an error, or is seen at processed and then vanishes with its fork.
Each step reads the status of the live attempt, asks next_action, and applies the
answer the way the worker does.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hypothesis import strategies as st

from chainworker.lifecycle.decide import Action, Replace, next_action
from chainworker.lifecycle.model import (
    Commitment,
    ObservedStatus,
    Policy,
    TxSnapshot,
    TxStatus,
)
from chainworker.lifecycle.transitions import apply_action, start_attempt

MAX_STEPS = 2_000
LEVELS = [Commitment.PROCESSED, Commitment.CONFIRMED, Commitment.FINALIZED]


@dataclass
class Fate:
    """What the cluster does with one attempt."""

    land_after_blocks: int | None  # counted from the first send; None: never lands
    err_code: str | None
    steps_per_level: list[int]  # steps spent at processed, confirmed before moving up
    vanishes_after_steps: int | None  # seen at processed, then dropped with its fork


@dataclass
class AttemptRun:
    tx: TxSnapshot
    fate: Fate
    validity: int
    sent_height: int | None = None
    landed_at_step: int | None = None
    vanished: bool = False

    def landed_for_good(self) -> bool:
        return self.landed_at_step is not None and not self.vanished


@dataclass
class Step:
    height: int
    now: float
    tx: TxSnapshot
    observed: ObservedStatus | None
    action: Action


@dataclass
class Run:
    policy: Policy
    attempts: list[AttemptRun] = field(default_factory=list)
    steps: list[Step] = field(default_factory=list)
    finished: bool = False

    @property
    def statuses(self) -> list[TxStatus]:
        return [a.tx.status for a in self.attempts]


@st.composite
def fates(draw: st.DrawFn, validity: int) -> Fate:
    lands = draw(st.booleans())
    return Fate(
        land_after_blocks=draw(st.integers(0, validity)) if lands else None,
        err_code=draw(st.none() | st.just("InstructionError:0:Custom:1")),
        steps_per_level=[draw(st.integers(0, 4)), draw(st.integers(0, 4))],
        vanishes_after_steps=draw(st.none() | st.integers(0, 3)),
    )


def observe(run: AttemptRun, step: int) -> ObservedStatus | None:
    if run.landed_at_step is None or run.vanished:
        return None
    age = step - run.landed_at_step
    level = 0
    for spent in run.fate.steps_per_level:
        if age >= spent:
            age -= spent
            level += 1
        else:
            break
    return ObservedStatus(
        slot=1_000 + run.landed_at_step,
        confirmation_status=LEVELS[level],
        err_code=run.fate.err_code,
        err_message=None if run.fate.err_code is None else "insufficient funds",
    )


def advance_cluster(run: AttemptRun, height: int, step: int) -> None:
    """Land or drop the attempt according to its fate."""
    fate = run.fate
    if run.sent_height is None or run.vanished:
        return
    if run.landed_at_step is None:
        lands = fate.land_after_blocks is not None
        if lands and height <= run.tx.last_valid_block_height:
            assert fate.land_after_blocks is not None
            if height >= run.sent_height + fate.land_after_blocks:
                run.landed_at_step = step
        return
    if fate.vanishes_after_steps is not None:
        still_processed = step - run.landed_at_step < fate.steps_per_level[0]
        if still_processed and step - run.landed_at_step >= fate.vanishes_after_steps:
            # Only a processed transaction can be lost with its fork.
            run.vanished = True


def simulate(data: st.DataObject, policy: Policy) -> Run:
    run = Run(policy)
    height = data.draw(st.integers(0, 1_000), label="start height")
    now = 0.0

    def new_attempt(number: int, sent: bool) -> AttemptRun:
        validity = data.draw(st.integers(1, 12), label="validity")
        attempt = AttemptRun(
            tx=start_attempt(number, height + validity, sent_at=now if sent else None),
            fate=data.draw(fates(validity), label="fate"),
            validity=validity,
        )
        if sent:
            attempt.sent_height = height
        run.attempts.append(attempt)
        return attempt

    # The first attempt may have been recorded and never sent (a crash in between).
    current = new_attempt(1, sent=data.draw(st.booleans(), label="first sent"))
    for step in range(MAX_STEPS):
        # Heights may stall for a while, but the cluster keeps moving eventually.
        height += data.draw(st.integers(0, 3), label="blocks") if step < 200 else 1
        now += data.draw(st.sampled_from([0.4, 1.0, 2.5]), label="seconds")
        advance_cluster(current, height, step)
        observed = observe(current, step)
        action = next_action(current.tx, observed, height, now, policy)
        run.steps.append(Step(height, now, current.tx, observed, action))
        current.tx = apply_action(current.tx, action, now)
        if current.sent_height is None and current.tx.last_sent_at is not None:
            current.sent_height = height
        if isinstance(action, Replace):
            current = new_attempt(action.next_attempt, sent=True)
        elif current.tx.status.is_outcome:
            run.finished = True
            break
    return run
