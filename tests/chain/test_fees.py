"""Compute-budget arithmetic."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from solders.compute_budget import set_compute_unit_limit, set_compute_unit_price
from solders.hash import Hash
from solders.instruction import CompiledInstruction
from solders.keypair import Keypair
from solders.message import MessageHeader, MessageV0
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.system_program import TransferParams, transfer
from solders.transaction import VersionedTransaction
from spl.token.instructions import get_associated_token_address

from chainworker.chain import fees, nft
from chainworker.chain.token2022 import TOKEN_2022_PROGRAM_ID


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


def test_a_first_attempt_offers_the_recent_price_capped() -> None:
    assert fees.replacement_price(400, 1, factor=1.5, floor=1_000, cap=10_000) == 400
    assert fees.replacement_price(0, 1, factor=1.5, floor=1_000, cap=10_000) == 0
    assert fees.replacement_price(50_000, 1, factor=1.5, floor=1_000, cap=10_000) == 10_000


def test_replacements_raise_from_the_recent_price_or_the_floor() -> None:
    # nobody paid anything lately: the floor, raised once per earlier attempt
    assert [fees.replacement_price(0, n, factor=2.0, floor=1_000, cap=100_000)
            for n in (2, 3, 4)] == [2_000, 4_000, 8_000]
    # a recent price above the floor is where the raises start
    assert fees.replacement_price(3_000, 2, factor=1.5, floor=1_000, cap=100_000) == 4_500
    assert fees.replacement_price(3_000, 9, factor=10.0, floor=1_000, cap=100_000) == 100_000


@given(
    recent=st.integers(0, 10**7), attempt=st.integers(1, 30),
    factor=st.floats(1.0, 10.0), floor=st.integers(0, 10**6), cap=st.integers(0, 10**7),
)
def test_replacement_price_never_falls_and_never_passes_the_cap(
    recent: int, attempt: int, factor: float, floor: int, cap: int
) -> None:
    price = fees.replacement_price(recent, attempt, factor=factor, floor=floor, cap=cap)
    following = fees.replacement_price(recent, attempt + 1, factor=factor, floor=floor, cap=cap)
    assert 0 <= price <= cap
    assert following >= price
    if attempt > 1:  # a replacement offers at least the recent price and the floor (capped)
        assert price >= min(cap, max(recent, floor))


def test_fee_of_reads_the_price_and_charges_the_limit_asked_for() -> None:
    payer, other = Keypair(), Keypair()
    instructions = [
        set_compute_unit_limit(40_000), set_compute_unit_price(25_000),
        transfer(TransferParams(from_pubkey=payer.pubkey(), to_pubkey=other.pubkey(),
                                lamports=1)),
    ]
    message = MessageV0.try_compile(payer.pubkey(), instructions, [], Hash.default())
    raw = bytes(VersionedTransaction(message, [payer]))
    # 5,000 for the signature + 40,000 units x 25,000 micro-lamports = 1,000 lamports
    assert fees.fee_of(raw) == (25_000, 6_000)
    bare = MessageV0.try_compile(payer.pubkey(), instructions[2:], [], Hash.default())
    assert fees.fee_of(bytes(VersionedTransaction(bare, [payer]))) == (0, 5_000)
    assert fees.fee_of(b"") is None and fees.fee_of(b"\x01garbage") is None
    # an instruction whose program is outside the message's keys: no transaction either
    stray = MessageV0(MessageHeader(1, 0, 0), [payer.pubkey()], Hash.default(),
                      [CompiledInstruction(5, b"\x02", b"")], [])
    assert fees.fee_of(bytes(VersionedTransaction.populate(stray, [Signature.default()]))) is None


@given(st.binary(min_size=32, max_size=32), st.binary(min_size=32, max_size=32))
def test_the_holder_account_and_its_search_are_the_associated_token_program_s(
    owner: bytes, mint: bytes
) -> None:
    holder, mint_key = Pubkey(owner), Pubkey(mint)
    expected = get_associated_token_address(holder, mint_key, TOKEN_2022_PROGRAM_ID)
    assert nft.holder_token_account(holder, mint_key) == expected
    steps = nft.address_search_steps(holder, mint_key)
    assert 0 <= steps <= 255
    # The bump found after `steps` failed tries gives the same address.
    seeds = [bytes(holder), bytes(TOKEN_2022_PROGRAM_ID), bytes(mint_key), bytes([255 - steps])]
    assert Pubkey.create_program_address(seeds, nft.ASSOCIATED_TOKEN_PROGRAM_ID) == expected


@given(st.binary(min_size=32, max_size=32), st.binary(min_size=32, max_size=32),
       st.binary(min_size=32, max_size=32))
def test_the_holder_account_instruction_is_spl_s_create_idempotent(
    payer: bytes, owner: bytes, mint: bytes
) -> None:
    from spl.token.instructions import create_idempotent_associated_token_account

    expected = create_idempotent_associated_token_account(
        Pubkey(payer), Pubkey(owner), Pubkey(mint), TOKEN_2022_PROGRAM_ID
    )
    assert nft._create_holder_account(Pubkey(payer), Pubkey(owner), Pubkey(mint)) == expected
