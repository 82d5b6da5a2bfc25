"""An authority rotation of one mint (a ticket's NFT or an event's group): every platform
authority the mint gives to the old key moves to the new one, in one transaction signed
by the old key.

Pure builders and parsers: no I/O. What moves is read from the mint account on chain
(`held_by`), never from the database: the mint authority (a ticket not yet a member of
its group keeps one for InitializeMember; a group always has one), the permanent
delegate, the mint close authority, the metadata update authority, the MetadataPointer,
GroupPointer and GroupMemberPointer authorities, and a group's update authority.

Token-2022's SetAuthority is written here, not taken from spl's builder: spl's
AuthorityType knows only the four types of the classic token program.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Final

from solders.hash import Hash
from solders.instruction import AccountMeta, Instruction
from solders.pubkey import Pubkey

from chainworker.chain import group, token2022
from chainworker.chain.nft import ComputeBudget, SignedTx, _prelude, _sign, _signers
from chainworker.chain.signer import Signer
from chainworker.chain.token2022 import TOKEN_2022_PROGRAM_ID

_IX_SET_AUTHORITY: Final = 6
# Token-2022's AuthorityType, by position in its enum.
MINT_TOKENS: Final = 0
CLOSE_MINT: Final = 6
PERMANENT_DELEGATE: Final = 8
METADATA_POINTER: Final = 12
GROUP_POINTER: Final = 13
GROUP_MEMBER_POINTER: Final = 14
# TokenMetadata UpdateAuthority: disc + the new authority (OptionalNonZeroPubkey, 32 bytes).
_UPDATE_AUTHORITY: Final = hashlib.sha256(
    b"spl_token_metadata_interface:update_the_authority"
).digest()[:8]


def set_authority(
    account: Pubkey, current: Pubkey, authority_type: int, new: Pubkey | None
) -> Instruction:
    """SetAuthority: `current` gives `authority_type` of `account` to `new` (None: nobody)."""
    option = bytes([0]) if new is None else bytes([1]) + bytes(new)
    data = bytes([_IX_SET_AUTHORITY, authority_type]) + option
    accounts = [AccountMeta(account, False, True), AccountMeta(current, True, False)]
    return Instruction(TOKEN_2022_PROGRAM_ID, data, accounts)


def update_metadata_authority(mint: Pubkey, current: Pubkey, new: Pubkey) -> Instruction:
    """TokenMetadata UpdateAuthority of the metadata held in the mint itself."""
    accounts = [AccountMeta(mint, False, True), AccountMeta(current, True, False)]
    return Instruction(TOKEN_2022_PROGRAM_ID, _UPDATE_AUTHORITY + bytes(new), accounts)


@dataclass(frozen=True, slots=True)
class Held:
    """Which of a mint's authorities one key holds: the SetAuthority types, the metadata's
    update authority, and (a group mint) the group's update authority."""

    types: tuple[int, ...] = ()
    metadata: bool = False
    group: bool = False

    @property
    def anything(self) -> bool:
        return bool(self.types) or self.metadata or self.group


def held_by(data: bytes, key: Pubkey) -> Held:
    """What `key` holds of the Token-2022 mint account `data`; ValueError when it is none."""
    mint = token2022.parse_mint(data)
    extensions = group.parse_group_extensions(data)
    holders = {
        MINT_TOKENS: mint.base.mint_authority,
        CLOSE_MINT: mint.close_authority,
        PERMANENT_DELEGATE: mint.permanent_delegate,
        METADATA_POINTER: mint.metadata_pointer.authority if mint.metadata_pointer else None,
        GROUP_POINTER: extensions.group_pointer.authority if extensions.group_pointer else None,
        GROUP_MEMBER_POINTER: (
            extensions.member_pointer.authority if extensions.member_pointer else None
        ),
    }
    types = tuple(kind for kind, holder in sorted(holders.items()) if holder == key)
    metadata = mint.metadata is not None and mint.metadata.update_authority == key
    in_group = extensions.group is not None and extensions.group.update_authority == key
    return Held(types, metadata, in_group)


def build_rotation(
    *,
    current: Signer,
    new: Pubkey,
    mint: Pubkey,
    held: Held,
    memo: str,
    recent_blockhash: Hash,
    compute: ComputeBudget | None = None,
    payer: Signer | None = None,
) -> SignedTx:
    """One transaction moving what `current` holds of the mint (`held`) to `new`."""
    if not held.anything:
        raise ValueError("the old authority holds nothing of this mint: nothing to rotate")
    if new == current.pubkey():
        raise ValueError("the new authority is the old one")
    instructions = _prelude(compute, memo)
    owner, payer_key, signers = _signers(current, payer)
    instructions += [set_authority(mint, owner, kind, new) for kind in held.types]
    if held.metadata:
        instructions.append(update_metadata_authority(mint, owner, new))
    if held.group:
        instructions.append(group.update_group_authority(mint, owner, new))
    instructions.append(token2022.memo(memo))
    return _sign(signers, payer_key, instructions, recent_blockhash)
