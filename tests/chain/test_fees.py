"""Compute-budget arithmetic."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chainworker.chain import fees


def test_unit_limit_adds_the_margin_and_rounds_up() -> None:
    assert fees.compute_unit_limit(35_000, 1.2) == 42_000
    assert fees.compute_unit_limit(1_001, 1.5) == 1_502
    assert fees.compute_unit_limit(0, 1.2) == 1


def test_unit_limit_is_bounded() -> None:
    assert fees.compute_unit_limit(1_300_000, 2.0) == fees.MAX_COMPUTE_UNITS
    with pytest.raises(ValueError):
        fees.compute_unit_limit(100, 0.5)


def test_unit_price_percentile_and_cap() -> None:
    recent = [0, 10, 20, 30, 40, 50, 60, 70, 80, 90]
    assert fees.compute_unit_price(recent, 50, 1_000) == 40
    assert fees.compute_unit_price(recent, 90, 1_000) == 80
    assert fees.compute_unit_price(recent, 100, 1_000) == 90
    assert fees.compute_unit_price(recent, 0, 1_000) == 0
    assert fees.compute_unit_price(recent, 100, 25) == 25
    assert fees.compute_unit_price([], 75, 1_000) == 0


@given(
    recent=st.lists(st.integers(min_value=0, max_value=10**9), max_size=150),
    percentile=st.integers(min_value=0, max_value=100),
    cap=st.integers(min_value=0, max_value=10**7),
)
def test_unit_price_never_exceeds_the_cap_or_the_data(
    recent: list[int], percentile: int, cap: int
) -> None:
    price = fees.compute_unit_price(recent, percentile, cap)
    assert 0 <= price <= cap
    assert price <= max(recent, default=0)
    if recent:
        assert price in recent or price == cap
