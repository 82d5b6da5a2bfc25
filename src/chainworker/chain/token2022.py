"""Token-2022 pieces solana-py lacks: extension instructions, extended-account parsers, sizes.

Everything here is pure (bytes in, bytes or dataclasses out). Parsers raise ValueError on
data that does not have the expected shape; the RPC layer turns that into a ChainError.
The base mint and token account (the first 82 and 165 bytes, the same in Token-2022 as in
SPL Token) are read by solders' `Mint` and `TokenAccount`; the extensions after them here.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Final

from solders.instruction import AccountMeta, Instruction
from solders.pubkey import Pubkey
from solders.rent import Rent
from solders.token import state as spl_state
from spl.memo.constants import MEMO_PROGRAM_ID
from spl.token.constants import TOKEN_2022_PROGRAM_ID

BASE_MINT_SIZE: Final = 82
BASE_ACCOUNT_SIZE: Final = 165
ACCOUNT_TYPE_MINT: Final = 1
ACCOUNT_TYPE_ACCOUNT: Final = 2

EXT_MINT_CLOSE_AUTHORITY: Final = 3
EXT_IMMUTABLE_OWNER: Final = 7
EXT_PERMANENT_DELEGATE: Final = 12
EXT_METADATA_POINTER: Final = 18
EXT_TOKEN_METADATA: Final = 19

_TLV_HEADER: Final = 4
# The MintCloseAuthority TLV: what a mint of an earlier release (without it) lacks.
MINT_CLOSE_AUTHORITY_SIZE: Final = _TLV_HEADER + 32
# Base account (padded) + account-type byte + PermanentDelegate TLV + MetadataPointer TLV
# + MintCloseAuthority TLV.
FIXED_MINT_SIZE: Final = (
    BASE_ACCOUNT_SIZE + 1 + (_TLV_HEADER + 32) + (_TLV_HEADER + 64) + MINT_CLOSE_AUTHORITY_SIZE
)

# The default rent (6960 lamports per byte, 128 bytes of account overhead), the one of every
# public cluster since genesis: 3480 lamports per byte-year times a 2-year exemption threshold.
_RENT: Final = Rent.default()

_IX_CLOSE_ACCOUNT: Final = 9
_IX_INITIALIZE_MINT_CLOSE_AUTHORITY: Final = 25
_IX_INITIALIZE_PERMANENT_DELEGATE: Final = 35
_IX_METADATA_POINTER_EXTENSION: Final = 39
_IX_METADATA_POINTER_INITIALIZE: Final = 0

_ZERO_KEY: Final = bytes(32)

# TokenMetadata UpdateField: the field enum's variants.
FIELD_NAME: Final = 0
FIELD_SYMBOL: Final = 1
FIELD_URI: Final = 2
_FIELD_KEY: Final = 3


def _discriminator(name: str) -> bytes:
    return hashlib.sha256(f"spl_token_metadata_interface:{name}".encode()).digest()[:8]


_METADATA_INITIALIZE: Final = _discriminator("initialize_account")
_METADATA_UPDATE_FIELD: Final = _discriminator("updating_field")


def _borsh_string(value: str) -> bytes:
    encoded = value.encode("utf-8")
    return struct.pack("<I", len(encoded)) + encoded


# --- sizes and rent ------------------------------------------------------


def metadata_tlv_size(
    name: str, symbol: str, uri: str, fields: Sequence[tuple[str, str]] = ()
) -> int:
    """Bytes the TokenMetadata extension will occupy, TLV header included."""
    size = _TLV_HEADER + 32 + 32  # header, update authority, mint
    for text in (name, symbol, uri):
        size += 4 + len(text.encode("utf-8"))
    size += 4  # additional_metadata vector length
    for key, value in fields:
        size += 4 + len(key.encode("utf-8")) + 4 + len(value.encode("utf-8"))
    return size


def fixed_mint_size(*, close_authority: bool = True) -> int:
    """Size of the mint account before its metadata: with MintCloseAuthority, or without
    it as an earlier release made them."""
    return FIXED_MINT_SIZE if close_authority else FIXED_MINT_SIZE - MINT_CLOSE_AUTHORITY_SIZE


def final_mint_size(
    name: str, symbol: str, uri: str, fields: Sequence[tuple[str, str]] = (), *,
    close_authority: bool = True,
) -> int:
    """Size of the mint account once its metadata is written."""
    return fixed_mint_size(close_authority=close_authority) + metadata_tlv_size(
        name, symbol, uri, fields
    )


def rent_exempt_lamports(size: int) -> int:
    """Minimum balance for an account of `size` bytes to be rent exempt."""
    return _RENT.minimum_balance(size)


# --- instructions --------------------------------------------------------


def initialize_permanent_delegate(mint: Pubkey, delegate: Pubkey) -> Instruction:
    data = bytes([_IX_INITIALIZE_PERMANENT_DELEGATE]) + bytes(delegate)
    return Instruction(TOKEN_2022_PROGRAM_ID, data, [AccountMeta(mint, False, True)])


def initialize_mint_close_authority(mint: Pubkey, authority: Pubkey) -> Instruction:
    """MintCloseAuthority: who may close the mint once its supply is 0. Only at creation,
    before InitializeMint."""
    data = bytes([_IX_INITIALIZE_MINT_CLOSE_AUTHORITY, 1]) + bytes(authority)
    return Instruction(TOKEN_2022_PROGRAM_ID, data, [AccountMeta(mint, False, True)])


def close_account(account: Pubkey, destination: Pubkey, authority: Pubkey) -> Instruction:
    """CloseAccount: a token account with no tokens (signed by its owner), or a mint with
    no supply (signed by its close authority); every lamport goes to `destination`."""
    accounts = [
        AccountMeta(account, False, True),
        AccountMeta(destination, False, True),
        AccountMeta(authority, True, False),
    ]
    return Instruction(TOKEN_2022_PROGRAM_ID, bytes([_IX_CLOSE_ACCOUNT]), accounts)


def initialize_metadata_pointer(
    mint: Pubkey, authority: Pubkey | None, metadata_address: Pubkey | None
) -> Instruction:
    data = (
        bytes([_IX_METADATA_POINTER_EXTENSION, _IX_METADATA_POINTER_INITIALIZE])
        + (bytes(authority) if authority else _ZERO_KEY)
        + (bytes(metadata_address) if metadata_address else _ZERO_KEY)
    )
    return Instruction(TOKEN_2022_PROGRAM_ID, data, [AccountMeta(mint, False, True)])


def initialize_token_metadata(
    *,
    mint: Pubkey,
    update_authority: Pubkey,
    mint_authority: Pubkey,
    name: str,
    symbol: str,
    uri: str,
) -> Instruction:
    """TokenMetadata Initialize, with the metadata stored in the mint itself."""
    data = _METADATA_INITIALIZE + _borsh_string(name) + _borsh_string(symbol) + _borsh_string(uri)
    accounts = [
        AccountMeta(mint, False, True),
        AccountMeta(update_authority, False, False),
        AccountMeta(mint, False, False),
        AccountMeta(mint_authority, True, False),
    ]
    return Instruction(TOKEN_2022_PROGRAM_ID, data, accounts)


def update_token_metadata_field(
    *, mint: Pubkey, update_authority: Pubkey, field: int | str, value: str
) -> Instruction:
    """TokenMetadata UpdateField: `field` is FIELD_NAME/SYMBOL/URI or a custom key."""
    if isinstance(field, str):
        field_bytes = bytes([_FIELD_KEY]) + _borsh_string(field)
    elif field in (FIELD_NAME, FIELD_SYMBOL, FIELD_URI):
        field_bytes = bytes([field])
    else:
        raise ValueError(f"unknown metadata field {field!r}")
    data = _METADATA_UPDATE_FIELD + field_bytes + _borsh_string(value)
    accounts = [AccountMeta(mint, False, True), AccountMeta(update_authority, True, False)]
    return Instruction(TOKEN_2022_PROGRAM_ID, data, accounts)


def memo(text: str) -> Instruction:
    """Memo v2 without signer accounts: a trace, not an authorization."""
    return Instruction(MEMO_PROGRAM_ID, text.encode("utf-8"), [])


# --- parsers -------------------------------------------------------------


@dataclass(frozen=True)
class BaseMint:
    mint_authority: Pubkey | None
    supply: int
    decimals: int
    is_initialized: bool
    freeze_authority: Pubkey | None


@dataclass(frozen=True)
class MetadataPointer:
    authority: Pubkey | None
    metadata_address: Pubkey | None


@dataclass(frozen=True)
class TokenMetadata:
    update_authority: Pubkey | None
    mint: Pubkey
    name: str
    symbol: str
    uri: str
    additional: tuple[tuple[str, str], ...] = ()

    def field(self, key: str) -> str | None:
        """The value of an additional field, or None."""
        for name, value in self.additional:
            if name == key:
                return value
        return None


@dataclass(frozen=True)
class MintAccount:
    base: BaseMint
    permanent_delegate: Pubkey | None = None
    metadata_pointer: MetadataPointer | None = None
    metadata: TokenMetadata | None = None
    extension_types: tuple[int, ...] = field(default=())
    # MintCloseAuthority: None when the mint has none (an earlier release's) or it is unset.
    close_authority: Pubkey | None = None


@dataclass(frozen=True)
class TokenAccount:
    mint: Pubkey
    owner: Pubkey
    amount: int
    close_authority: Pubkey | None = None  # when set, it alone may close the account
    frozen: bool = False


def _optional_key(raw: bytes) -> Pubkey | None:
    return None if raw == _ZERO_KEY else Pubkey.from_bytes(raw)


def iter_tlv(data: bytes, account_type: int) -> Iterator[tuple[int, bytes]]:
    """The (extension type, value) entries of an extended Token-2022 account."""
    if len(data) <= BASE_ACCOUNT_SIZE:
        return
    if data[BASE_ACCOUNT_SIZE] != account_type:
        raise ValueError(f"account type byte is {data[BASE_ACCOUNT_SIZE]}, expected {account_type}")
    offset = BASE_ACCOUNT_SIZE + 1
    while offset + _TLV_HEADER <= len(data):
        ext_type, length = struct.unpack_from("<HH", data, offset)
        if ext_type == 0:  # Uninitialized: the rest is padding
            return
        start = offset + _TLV_HEADER
        end = start + length
        if end > len(data):
            raise ValueError(f"extension {ext_type} runs past the end of the account")
        yield ext_type, data[start:end]
        offset = end


class _Reader:
    def __init__(self, data: bytes) -> None:
        self._data = data
        self._offset = 0

    def take(self, size: int) -> bytes:
        end = self._offset + size
        if end > len(self._data):
            raise ValueError("metadata is truncated")
        chunk = self._data[self._offset : end]
        self._offset = end
        return chunk

    def u32(self) -> int:
        value: int = struct.unpack("<I", self.take(4))[0]
        return value

    def string(self) -> str:
        return self.take(self.u32()).decode("utf-8")


def parse_token_metadata(value: bytes) -> TokenMetadata:
    reader = _Reader(value)
    update_authority = _optional_key(reader.take(32))
    mint = Pubkey.from_bytes(reader.take(32))
    name, symbol, uri = reader.string(), reader.string(), reader.string()
    count = reader.u32()
    additional = tuple((reader.string(), reader.string()) for _ in range(count))
    return TokenMetadata(update_authority, mint, name, symbol, uri, additional)


def parse_mint(data: bytes) -> MintAccount:
    """A Token-2022 (or classic) mint account, with the extensions chainworker uses.

    The base mint must be initialized and well formed (option tags 0 or 1), as the token
    program itself requires.
    """
    if len(data) < BASE_MINT_SIZE:
        raise ValueError(f"mint account is {len(data)} bytes, expected at least {BASE_MINT_SIZE}")
    raw = spl_state.Mint.from_bytes(data[:BASE_MINT_SIZE])
    base = BaseMint(
        mint_authority=raw.mint_authority,
        supply=raw.supply,
        decimals=raw.decimals,
        is_initialized=raw.is_initialized,
        freeze_authority=raw.freeze_authority,
    )
    delegate: Pubkey | None = None
    pointer: MetadataPointer | None = None
    metadata: TokenMetadata | None = None
    close_authority: Pubkey | None = None
    types: list[int] = []
    for ext_type, value in iter_tlv(data, ACCOUNT_TYPE_MINT):
        types.append(ext_type)
        if ext_type == EXT_MINT_CLOSE_AUTHORITY and len(value) == 32:
            close_authority = _optional_key(value)
        elif ext_type == EXT_PERMANENT_DELEGATE and len(value) == 32:
            delegate = _optional_key(value)
        elif ext_type == EXT_METADATA_POINTER and len(value) == 64:
            pointer = MetadataPointer(_optional_key(value[:32]), _optional_key(value[32:]))
        elif ext_type == EXT_TOKEN_METADATA:
            metadata = parse_token_metadata(value)
    return MintAccount(base, delegate, pointer, metadata, tuple(types), close_authority)


def parse_token_account(data: bytes) -> TokenAccount:
    """A Token-2022 (or classic) token account: mint, owner and amount.

    The base account must be initialized (or frozen) and well formed, as the token program
    itself requires.
    """
    if len(data) < BASE_ACCOUNT_SIZE:
        raise ValueError(
            f"token account is {len(data)} bytes, expected at least {BASE_ACCOUNT_SIZE}"
        )
    raw = spl_state.TokenAccount.from_bytes(data[:BASE_ACCOUNT_SIZE])
    return TokenAccount(
        raw.mint, raw.owner, raw.amount, raw.close_authority,
        raw.state == spl_state.TokenAccountState.Frozen,
    )
