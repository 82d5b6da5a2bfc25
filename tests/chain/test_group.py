"""Token-group instruction encodings and extension parsers on hand-made bytes (the SVM
tests cover real accounts)."""

from __future__ import annotations

import hashlib
import struct

import pytest
from solders.pubkey import Pubkey

from chainworker.chain import group, token2022

MINT = Pubkey.new_unique()
GROUP = Pubkey.new_unique()
AUTHORITY = Pubkey.new_unique()


def _tlv(ext_type: int, value: bytes) -> bytes:
    return struct.pack("<HH", ext_type, len(value)) + value


def mint_data(*entries: bytes) -> bytes:
    """A mint account: 82 bytes of base mint (initialized), padding, the type byte, TLVs."""
    base = bytearray(token2022.BASE_ACCOUNT_SIZE)
    base[45] = 1  # is_initialized
    return bytes(base) + bytes([token2022.ACCOUNT_TYPE_MINT]) + b"".join(entries)


def test_the_discriminators_are_the_interface_hashes() -> None:
    def expected(name: str) -> bytes:
        return hashlib.sha256(f"spl_token_group_interface:{name}".encode()).digest()[:8]

    init = group.initialize_group(
        group=GROUP, mint_authority=AUTHORITY, update_authority=AUTHORITY, max_size=7
    )
    assert bytes(init.data) == expected("initialize_token_group") + bytes(AUTHORITY) + (
        struct.pack("<Q", 7)
    )
    assert [(m.pubkey, m.is_signer, m.is_writable) for m in init.accounts] == [
        (GROUP, False, True), (GROUP, False, False), (AUTHORITY, True, False),
    ]
    member = group.initialize_member(
        member=MINT, member_mint_authority=AUTHORITY, group=GROUP,
        group_update_authority=AUTHORITY,
    )
    assert bytes(member.data) == expected("initialize_member")
    assert [(m.pubkey, m.is_signer, m.is_writable) for m in member.accounts] == [
        (MINT, False, True), (MINT, False, False), (AUTHORITY, True, False),
        (GROUP, False, True), (AUTHORITY, True, False),
    ]
    assert {init.program_id, member.program_id} == {token2022.TOKEN_2022_PROGRAM_ID}


def test_pointer_instruction_layouts() -> None:
    pointer = group.initialize_group_pointer(GROUP, AUTHORITY, GROUP)
    assert bytes(pointer.data) == bytes([40, 0]) + bytes(AUTHORITY) + bytes(GROUP)
    member = group.initialize_group_member_pointer(MINT, None, MINT)
    assert bytes(member.data) == bytes([41, 0]) + bytes(32) + bytes(MINT)
    assert [(m.pubkey, m.is_signer, m.is_writable) for m in member.accounts] == [
        (MINT, False, True)
    ]


def test_max_size_is_a_u64() -> None:
    group.initialize_group(group=GROUP, mint_authority=AUTHORITY, update_authority=None,
                           max_size=group.MAX_GROUP_SIZE)
    for bad in (-1, group.MAX_GROUP_SIZE + 1):
        with pytest.raises(ValueError, match="max_size"):
            group.initialize_group(group=GROUP, mint_authority=AUTHORITY,
                                   update_authority=AUTHORITY, max_size=bad)


def test_group_and_member_extensions_are_parsed() -> None:
    data = mint_data(
        _tlv(token2022.EXT_METADATA_POINTER, bytes(AUTHORITY) + bytes(MINT)),
        _tlv(group.EXT_GROUP_POINTER, bytes(32) + bytes(GROUP)),
        _tlv(group.EXT_TOKEN_GROUP, bytes(AUTHORITY) + bytes(GROUP) + struct.pack("<QQ", 3, 9)),
        _tlv(group.EXT_GROUP_MEMBER_POINTER, bytes(AUTHORITY) + bytes(MINT)),
        _tlv(group.EXT_TOKEN_GROUP_MEMBER, bytes(MINT) + bytes(GROUP) + struct.pack("<Q", 2)),
    )
    found = group.parse_group_extensions(data)
    assert found.group_pointer == group.GroupPointer(None, GROUP)
    assert found.group == group.TokenGroup(AUTHORITY, GROUP, 3, 9)
    assert found.member_pointer == group.GroupMemberPointer(AUTHORITY, MINT)
    assert found.member == group.TokenGroupMember(MINT, GROUP, 2)


def test_a_plain_mint_has_no_group_extensions() -> None:
    assert group.parse_group_extensions(bytes(82)) == group.GroupExtensions()
    assert group.parse_group_extensions(mint_data()) == group.GroupExtensions()


@pytest.mark.parametrize(
    ("ext_type", "size"),
    [(group.EXT_GROUP_POINTER, 63), (group.EXT_TOKEN_GROUP, 81),
     (group.EXT_GROUP_MEMBER_POINTER, 65), (group.EXT_TOKEN_GROUP_MEMBER, 71)],
)
def test_an_extension_of_the_wrong_size_is_refused(ext_type: int, size: int) -> None:
    with pytest.raises(ValueError, match=f"extension {ext_type} is {size} bytes"):
        group.parse_group_extensions(mint_data(_tlv(ext_type, bytes(size))))


def test_an_extension_running_past_the_account_is_refused() -> None:
    truncated = mint_data(_tlv(group.EXT_TOKEN_GROUP_MEMBER, bytes(72)))[:-10]
    with pytest.raises(ValueError, match="runs past the end"):
        group.parse_group_extensions(truncated)


def test_sizes() -> None:
    assert group.MEMBER_EXTENSIONS_SIZE == (4 + 64) + (4 + 72)
    assert group.TOKEN_GROUP_TLV == 84 and group.GROUP_POINTER_TLV == 68
