"""Token-2022 token groups: the instructions, parsers and sizes of event collections.

An event is a group: a mint carrying GroupPointer (to itself) and TokenGroup. A ticket is a
member: its mint carries GroupMemberPointer (to itself, set at creation) and, once
verified, TokenGroupMember naming the group and a member number. Token-2022 processes the
token-group interface itself, so every instruction here goes to Token-2022.

Pure: bytes in, bytes or dataclasses out. Parsers raise ValueError on data of the wrong
shape. Layouts: GroupPointer / GroupMemberPointer (authority 32, address 32), TokenGroup
(update authority 32, mint 32, size u64, max size u64), TokenGroupMember (mint 32, group
32, member number u64); all little-endian, a zero key meaning none.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass
from typing import Final

from solders.instruction import AccountMeta, Instruction
from solders.pubkey import Pubkey

from chainworker.chain import token2022
from chainworker.chain.token2022 import TOKEN_2022_PROGRAM_ID

EXT_GROUP_POINTER: Final = 20
EXT_TOKEN_GROUP: Final = 21
EXT_GROUP_MEMBER_POINTER: Final = 22
EXT_TOKEN_GROUP_MEMBER: Final = 23

_TLV_HEADER: Final = 4
GROUP_POINTER_TLV: Final = _TLV_HEADER + 64
GROUP_MEMBER_POINTER_TLV: Final = _TLV_HEADER + 64
TOKEN_GROUP_TLV: Final = _TLV_HEADER + 80
TOKEN_GROUP_MEMBER_TLV: Final = _TLV_HEADER + 72
# What membership adds to a ticket's mint: the pointer, written at creation, and the member
# entry Token-2022 appends at verification (it grows the account but adds no lamports, so
# the mint is funded for both when it is created).
MEMBER_EXTENSIONS_SIZE: Final = GROUP_MEMBER_POINTER_TLV + TOKEN_GROUP_MEMBER_TLV

# No cap on an event's members: an event's capacity can change after its group exists, and
# a cap would take another transaction (UpdateGroupMaxSize) before more tickets could join.
# What makes a member authentic is the update authority's signature, not the cap.
MAX_GROUP_SIZE: Final = 2**64 - 1

_IX_GROUP_POINTER_EXTENSION: Final = 40
_IX_GROUP_MEMBER_POINTER_EXTENSION: Final = 41
_IX_POINTER_INITIALIZE: Final = 0
_ZERO_KEY: Final = bytes(32)


def _discriminator(name: str) -> bytes:
    return hashlib.sha256(f"spl_token_group_interface:{name}".encode()).digest()[:8]


_INITIALIZE_GROUP: Final = _discriminator("initialize_token_group")
_UPDATE_GROUP_AUTHORITY: Final = _discriminator("update_authority")
_INITIALIZE_MEMBER: Final = _discriminator("initialize_member")


def _key(value: Pubkey | None) -> bytes:
    return bytes(value) if value is not None else _ZERO_KEY


# --- instructions --------------------------------------------------------


def initialize_group_pointer(
    mint: Pubkey, authority: Pubkey | None, group_address: Pubkey | None
) -> Instruction:
    """GroupPointer, before InitializeMint: where the mint's TokenGroup lives."""
    data = (
        bytes([_IX_GROUP_POINTER_EXTENSION, _IX_POINTER_INITIALIZE])
        + _key(authority) + _key(group_address)
    )
    return Instruction(TOKEN_2022_PROGRAM_ID, data, [AccountMeta(mint, False, True)])


def initialize_group_member_pointer(
    mint: Pubkey, authority: Pubkey | None, member_address: Pubkey | None
) -> Instruction:
    """GroupMemberPointer, before InitializeMint: the only moment Token-2022 allows it."""
    data = (
        bytes([_IX_GROUP_MEMBER_POINTER_EXTENSION, _IX_POINTER_INITIALIZE])
        + _key(authority) + _key(member_address)
    )
    return Instruction(TOKEN_2022_PROGRAM_ID, data, [AccountMeta(mint, False, True)])


def initialize_group(
    *, group: Pubkey, mint_authority: Pubkey, update_authority: Pubkey | None, max_size: int
) -> Instruction:
    """TokenGroup in the group mint itself, signed by its mint authority."""
    if not 0 <= max_size <= MAX_GROUP_SIZE:
        raise ValueError(f"max_size must be 0..{MAX_GROUP_SIZE}")
    data = _INITIALIZE_GROUP + _key(update_authority) + struct.pack("<Q", max_size)
    accounts = [
        AccountMeta(group, False, True),
        AccountMeta(group, False, False),
        AccountMeta(mint_authority, True, False),
    ]
    return Instruction(TOKEN_2022_PROGRAM_ID, data, accounts)


def update_group_authority(group: Pubkey, current: Pubkey, new: Pubkey) -> Instruction:
    """UpdateGroupAuthority: the group's update authority (who adds members) becomes `new`."""
    accounts = [AccountMeta(group, False, True), AccountMeta(current, True, False)]
    return Instruction(TOKEN_2022_PROGRAM_ID, _UPDATE_GROUP_AUTHORITY + bytes(new), accounts)


def initialize_member(
    *, member: Pubkey, member_mint_authority: Pubkey, group: Pubkey,
    group_update_authority: Pubkey,
) -> Instruction:
    """TokenGroupMember in the member mint itself: signed by the member mint's mint authority
    and the group's update authority; the group's size grows by one."""
    accounts = [
        AccountMeta(member, False, True),
        AccountMeta(member, False, False),
        AccountMeta(member_mint_authority, True, False),
        AccountMeta(group, False, True),
        AccountMeta(group_update_authority, True, False),
    ]
    return Instruction(TOKEN_2022_PROGRAM_ID, _INITIALIZE_MEMBER, accounts)


# --- parsers -------------------------------------------------------------


@dataclass(frozen=True)
class GroupPointer:
    authority: Pubkey | None
    group_address: Pubkey | None


@dataclass(frozen=True)
class GroupMemberPointer:
    authority: Pubkey | None
    member_address: Pubkey | None


@dataclass(frozen=True)
class TokenGroup:
    update_authority: Pubkey | None
    mint: Pubkey
    size: int
    max_size: int


@dataclass(frozen=True)
class TokenGroupMember:
    mint: Pubkey
    group: Pubkey
    member_number: int


@dataclass(frozen=True)
class GroupExtensions:
    """The group extensions a mint carries (None: it has not that one)."""

    group_pointer: GroupPointer | None = None
    group: TokenGroup | None = None
    member_pointer: GroupMemberPointer | None = None
    member: TokenGroupMember | None = None


def _optional(raw: bytes) -> Pubkey | None:
    return None if raw == _ZERO_KEY else Pubkey.from_bytes(raw)


def _sized(ext_type: int, value: bytes, size: int) -> bytes:
    if len(value) != size:
        raise ValueError(f"extension {ext_type} is {len(value)} bytes, expected {size}")
    return value


def parse_group_extensions(data: bytes) -> GroupExtensions:
    """The group extensions of a Token-2022 mint account's data (a plain mint has none)."""
    found: dict[int, bytes] = {}
    for ext_type, value in token2022.iter_tlv(data, token2022.ACCOUNT_TYPE_MINT):
        if ext_type in (EXT_GROUP_POINTER, EXT_GROUP_MEMBER_POINTER):
            found[ext_type] = _sized(ext_type, value, 64)
        elif ext_type == EXT_TOKEN_GROUP:
            found[ext_type] = _sized(ext_type, value, 80)
        elif ext_type == EXT_TOKEN_GROUP_MEMBER:
            found[ext_type] = _sized(ext_type, value, 72)
    pointer = found.get(EXT_GROUP_POINTER)
    group = found.get(EXT_TOKEN_GROUP)
    member_pointer = found.get(EXT_GROUP_MEMBER_POINTER)
    member = found.get(EXT_TOKEN_GROUP_MEMBER)
    return GroupExtensions(
        group_pointer=(
            GroupPointer(_optional(pointer[:32]), _optional(pointer[32:])) if pointer else None
        ),
        group=TokenGroup(
            _optional(group[:32]), Pubkey.from_bytes(group[32:64]),
            *struct.unpack("<QQ", group[64:80]),
        ) if group else None,
        member_pointer=GroupMemberPointer(
            _optional(member_pointer[:32]), _optional(member_pointer[32:])
        ) if member_pointer else None,
        member=TokenGroupMember(
            Pubkey.from_bytes(member[:32]), Pubkey.from_bytes(member[32:64]),
            struct.unpack("<Q", member[64:72])[0],
        ) if member else None,
    )
