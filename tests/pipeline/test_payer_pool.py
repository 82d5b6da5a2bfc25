"""Which payer pays: the least-loaded funded one, else the authority."""

from __future__ import annotations

import pytest
from solders.keypair import Keypair

from chainworker.pipeline import payer_pool
from chainworker.pipeline.payer_pool import PayerPool

MIN = 1_000


def funded_pool(count: int) -> PayerPool:
    pool = PayerPool(Keypair(), tuple(Keypair() for _ in range(count)), MIN)
    for key in pool.keys:
        pool.note_balance(key, 10 * MIN)
    return pool


def test_no_pool_or_no_funded_payer_means_the_authority_pays() -> None:
    assert PayerPool(Keypair(), (), MIN).take() is None
    unknown = PayerPool(Keypair(), (Keypair(), Keypair()), MIN)
    assert unknown.take() is None  # balances not read yet
    unknown.note_balance(unknown.keys[0], MIN - 1)
    assert unknown.take() is None  # below the threshold


def test_transactions_spread_over_the_payers_by_the_units_charged() -> None:
    pool = funded_pool(3)
    taken = []
    for _ in range(9):
        payer = pool.take()
        assert payer is not None
        pool.charge(payer, 40_000, 10)
        taken.append(payer.pubkey())
    assert sorted(taken.count(key) for key in pool.keys) == [3, 3, 3]
    # a heavier transaction weighs more: the next two go elsewhere
    heavy = pool.take()
    assert heavy is not None
    pool.charge(heavy, 200_000, 10)
    following = pool.take()
    assert following is not None and following.pubkey() != heavy.pubkey()


def test_a_payer_that_spends_below_the_threshold_stops_being_used() -> None:
    pool = funded_pool(2)
    drained = pool.take()
    assert drained is not None
    pool.charge(drained, 1, 9 * MIN + 1)  # what it signed for leaves it below MIN
    for _ in range(5):
        payer = pool.take()
        assert payer is not None and payer.pubkey() != drained.pubkey()
        pool.charge(payer, 1_000_000, 0)


def test_load_is_forgotten_after_the_window(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [100.0]
    monkeypatch.setattr(payer_pool.time, "monotonic", lambda: now[0])
    pool = funded_pool(2)
    first = pool.take()
    assert first is not None
    pool.charge(first, 1_000_000, 0)
    second = pool.take()
    assert second is not None and second.pubkey() != first.pubkey()
    pool.charge(second, 10, 0)
    now[0] += payer_pool.LOAD_WINDOW_SECONDS + 0.1
    pool.charge(second, 10, 0)  # both windows expired; second has the only recent load
    again = pool.take()
    assert again is not None and again.pubkey() == first.pubkey()


def test_charges_for_the_authority_or_a_stranger_are_ignored() -> None:
    pool = funded_pool(1)
    pool.charge(None, 10**9, 10**9)
    pool.charge(Keypair(), 10**9, 10**9)
    assert pool.take() is not None
