"""Instruction encodings and parsers on hand-made bytes (the SVM tests cover real accounts)."""

from __future__ import annotations

import hashlib
import struct

import pytest
from solders.pubkey import Pubkey
from solders.token.state import TokenAccount, TokenAccountState

from chainworker.chain import token2022

MINT = Pubkey.new_unique()
AUTHORITY = Pubkey.new_unique()


def test_metadata_discriminators_are_the_interface_hashes() -> None:
    ix = token2022.initialize_token_metadata(
        mint=MINT,
        update_authority=AUTHORITY,
        mint_authority=AUTHORITY,
        name="a",
        symbol="",
        uri="u",
    )
    expected = hashlib.sha256(b"spl_token_metadata_interface:initialize_account").digest()[:8]
    assert bytes(ix.data) == expected + b"\x01\x00\x00\x00a" + b"\x00" * 4 + b"\x01\x00\x00\x00u"
    assert [(m.pubkey, m.is_signer, m.is_writable) for m in ix.accounts] == [
        (MINT, False, True),
        (AUTHORITY, False, False),
        (MINT, False, False),
        (AUTHORITY, True, False),
    ]


def test_update_field_encodes_standard_and_custom_fields() -> None:
    prefix = hashlib.sha256(b"spl_token_metadata_interface:updating_field").digest()[:8]
    uri = token2022.update_token_metadata_field(
        mint=MINT, update_authority=AUTHORITY, field=token2022.FIELD_URI, value="x"
    )
    assert bytes(uri.data) == prefix + b"\x02" + b"\x01\x00\x00\x00x"
    custom = token2022.update_token_metadata_field(
        mint=MINT, update_authority=AUTHORITY, field="ticket_id", value="é"
    )
    assert bytes(custom.data) == prefix + b"\x03\x09\x00\x00\x00ticket_id\x02\x00\x00\x00\xc3\xa9"
    with pytest.raises(ValueError):
        token2022.update_token_metadata_field(
            mint=MINT, update_authority=AUTHORITY, field=9, value="x"
        )


def test_extension_instruction_layouts() -> None:
    delegate = token2022.initialize_permanent_delegate(MINT, AUTHORITY)
    assert bytes(delegate.data) == bytes([35]) + bytes(AUTHORITY)
    pointer = token2022.initialize_metadata_pointer(MINT, None, MINT)
    assert bytes(pointer.data) == bytes([39, 0]) + bytes(32) + bytes(MINT)
    assert token2022.memo("hi").accounts == []


def _tlv(ext_type: int, value: bytes) -> bytes:
    return struct.pack("<HH", ext_type, len(value)) + value


def _base_mint(supply: int) -> bytes:
    base = struct.pack("<I32sQBBI32s", 0, bytes(32), supply, 0, 1, 0, bytes(32))
    return base.ljust(token2022.BASE_ACCOUNT_SIZE, b"\x00")


def test_parse_mint_walks_the_tlv_entries() -> None:
    data = (
        _base_mint(1)
        + bytes([token2022.ACCOUNT_TYPE_MINT])
        + _tlv(token2022.EXT_PERMANENT_DELEGATE, bytes(AUTHORITY))
        + _tlv(99, b"unknown extension")
    )
    parsed = token2022.parse_mint(data)
    assert parsed.base.supply == 1 and parsed.base.mint_authority is None
    assert parsed.permanent_delegate == AUTHORITY
    assert parsed.metadata is None
    assert parsed.extension_types == (token2022.EXT_PERMANENT_DELEGATE, 99)


def test_classic_mint_has_no_extensions() -> None:
    parsed = token2022.parse_mint(_base_mint(5)[: token2022.BASE_MINT_SIZE])
    assert parsed.base.supply == 5
    assert parsed.extension_types == ()


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x00" * 10,
        _base_mint(1) + bytes([token2022.ACCOUNT_TYPE_ACCOUNT]),
        _base_mint(1) + bytes([1]) + struct.pack("<HH", 12, 500) + b"\x00" * 8,
        _base_mint(1) + bytes([1]) + _tlv(token2022.EXT_TOKEN_METADATA, b"\x00" * 70),
        _base_mint(1) + bytes([1]) + _tlv(token2022.EXT_TOKEN_METADATA, b"\x00" * 64 + b"\xff" * 4),
    ],
)
def test_malformed_mints_raise_value_error(data: bytes) -> None:
    with pytest.raises(ValueError):
        token2022.parse_mint(data)


def test_token_account_too_short_raises_value_error() -> None:
    with pytest.raises(ValueError):
        token2022.parse_token_account(b"\x01" * 100)


def test_invalid_utf8_metadata_raises_value_error() -> None:
    value = bytes(32) + bytes(MINT) + b"\x02\x00\x00\x00\xff\xfe" + b"\x00" * 12
    with pytest.raises(ValueError):
        token2022.parse_token_metadata(value)


@pytest.mark.parametrize("size", [0, 82, 165, 170, 522, 10 * 1024 * 1024])
def test_rent_is_the_default_rent_of_every_public_cluster(size: int) -> None:
    # 3480 lamports per byte-year, 2 years, 128 bytes of overhead: what it always was.
    assert token2022.rent_exempt_lamports(size) == (128 + size) * 3480 * 2


def test_token_account_base_is_read_from_its_first_165_bytes() -> None:
    base = TokenAccount(
        mint=MINT, owner=AUTHORITY, amount=1, delegate=None,
        state=TokenAccountState.Initialized, is_native=None, delegated_amount=0,
    )
    extended = bytes(base) + bytes([token2022.ACCOUNT_TYPE_ACCOUNT]) + _tlv(7, b"")
    assert token2022.parse_token_account(extended) == token2022.TokenAccount(MINT, AUTHORITY, 1)


@pytest.mark.parametrize(
    "base",
    [
        # never written by the token program: not initialized, or an option tag of 2
        struct.pack("<I32sQBBI32s", 0, bytes(32), 1, 0, 0, 0, bytes(32)),
        struct.pack("<I32sQBBI32s", 2, bytes(32), 1, 0, 1, 0, bytes(32)),
    ],
)
def test_base_mints_the_token_program_never_writes_raise_value_error(base: bytes) -> None:
    with pytest.raises(ValueError):
        token2022.parse_mint(base)


def test_uninitialized_token_account_raises_value_error() -> None:
    with pytest.raises(ValueError):
        token2022.parse_token_account(bytes(token2022.BASE_ACCOUNT_SIZE))


def test_close_authority_and_close_account_layouts() -> None:
    init = token2022.initialize_mint_close_authority(MINT, AUTHORITY)
    assert bytes(init.data) == bytes([25, 1]) + bytes(AUTHORITY)
    assert [(m.pubkey, m.is_signer, m.is_writable) for m in init.accounts] == [(MINT, False, True)]
    destination = Pubkey.new_unique()
    close = token2022.close_account(MINT, destination, AUTHORITY)
    assert bytes(close.data) == bytes([9])
    assert close.program_id == token2022.TOKEN_2022_PROGRAM_ID
    assert [(m.pubkey, m.is_signer, m.is_writable) for m in close.accounts] == [
        (MINT, False, True), (destination, False, True), (AUTHORITY, True, False),
    ]


def test_mint_sizes_count_the_close_authority() -> None:
    assert token2022.FIXED_MINT_SIZE == 165 + 1 + 36 + 68 + 36
    assert token2022.fixed_mint_size(close_authority=False) == token2022.FIXED_MINT_SIZE - 36
    fields = [("ticket_id", "t")]
    assert token2022.final_mint_size("n", "s", "u", fields) - token2022.final_mint_size(
        "n", "s", "u", fields, close_authority=False
    ) == 36


@pytest.mark.parametrize(
    ("value", "expected"), [(bytes(AUTHORITY), AUTHORITY), (bytes(32), None), (b"\x01" * 31, None)]
)
def test_parse_mint_reads_the_close_authority(value: bytes, expected: Pubkey | None) -> None:
    data = (
        _base_mint(1) + bytes([token2022.ACCOUNT_TYPE_MINT])
        + _tlv(token2022.EXT_MINT_CLOSE_AUTHORITY, value)
        + _tlv(token2022.EXT_PERMANENT_DELEGATE, bytes(MINT))
    )
    parsed = token2022.parse_mint(data)
    assert parsed.close_authority == expected  # zeros: unset; a wrong length: not believed
    assert parsed.permanent_delegate == MINT
    assert token2022.EXT_MINT_CLOSE_AUTHORITY in parsed.extension_types


def test_a_mint_without_the_extension_has_no_close_authority() -> None:
    data = _base_mint(1) + bytes([1]) + _tlv(token2022.EXT_PERMANENT_DELEGATE, bytes(AUTHORITY))
    assert token2022.parse_mint(data).close_authority is None


def test_token_account_close_authority_and_frozen_state_are_read() -> None:
    closer = Pubkey.new_unique()
    base = TokenAccount(
        mint=MINT, owner=AUTHORITY, amount=1, delegate=None, state=TokenAccountState.Frozen,
        is_native=None, delegated_amount=0, close_authority=closer,
    )
    parsed = token2022.parse_token_account(bytes(base))
    assert parsed == token2022.TokenAccount(MINT, AUTHORITY, 1, closer, frozen=True)
