"""The checks a block height passes before it may decide an expiry (property tests)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from chainworker.lifecycle import heights
from chainworker.lifecycle.heights import MARGIN_BLOCKS, MAX_BLOCKS_PER_SECOND, MAX_HEIGHT, Seen

height = st.integers(min_value=0, max_value=MAX_HEIGHT - 1)
seconds = st.floats(min_value=0, max_value=3600, allow_nan=False)


@given(height, height, seconds)
def test_a_height_never_goes_back_on_its_endpoint(before: int, reported: int, at: float) -> None:
    problem = heights.height_problem(
        reported, before_on_endpoint=Seen(before, at), highest=None, now=at
    )
    assert (problem is not None) == (reported < before)


@given(height, st.integers(min_value=0, max_value=10**6), seconds, seconds)
def test_a_height_within_what_the_cluster_can_make_is_believed(
    highest: int, ahead: int, at: float, elapsed: float
) -> None:
    reported = highest + ahead
    ceiling = highest + elapsed * MAX_BLOCKS_PER_SECOND + MARGIN_BLOCKS
    problem = heights.height_problem(
        reported, before_on_endpoint=None, highest=Seen(highest, at), now=at + elapsed
    )
    if reported >= MAX_HEIGHT:
        assert problem is not None
    else:
        assert (problem is None) == (reported <= ceiling)


@given(st.one_of(
    st.integers(min_value=MAX_HEIGHT, max_value=10**40), st.integers(max_value=-1),
    st.text(), st.none(), st.booleans(), st.floats(), st.lists(st.integers()),
))
def test_garbage_is_never_a_height(reported: object) -> None:
    problem = heights.height_problem(reported, before_on_endpoint=None, highest=None, now=0)
    assert problem is not None


@given(height, height)
def test_a_height_above_its_slot_is_garbage(block_height: int, slot: int) -> None:
    assert (heights.beyond_slot(block_height, slot) is not None) == (block_height > slot)


@given(st.lists(st.tuples(height, seconds), min_size=1, max_size=20))
def test_later_keeps_the_highest(seen: list[tuple[int, float]]) -> None:
    kept: Seen | None = None
    for value, at in seen:
        kept = heights.later(kept, value, at)
    assert kept is not None and kept.height == max(value for value, _ in seen)
