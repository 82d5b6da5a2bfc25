"""Signed transactions for event collections: an event's group, a ticket's membership.

Pure builders, like `nft`'s: the caller supplies the blockhash; the result is what gets
recorded before anything is sent. The platform authority is the group's update authority
and mint authority, so it alone can add members: a ticket's mint that is a member of the
platform's group for its event is a ticket the platform issued.
"""

from __future__ import annotations

from typing import Final
from uuid import UUID

from solders.hash import Hash
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from spl.token.instructions import initialize_mint2
from spl.token.models import InitializeMint2Params

from chainworker.chain import group, nft, token2022
from chainworker.chain.nft import (
    EVENT_ID_FIELD,
    NAME_MAX_BYTES,
    NFT_DECIMALS,
    SYMBOL_MAX_BYTES,
    ComputeBudget,
    SignedTx,
)
from chainworker.chain.signer import Signer
from chainworker.chain.token2022 import TOKEN_2022_PROGRAM_ID

# The group mint at InitializeMint: base account, account type, MetadataPointer and
# GroupPointer; TokenMetadata and TokenGroup are appended after it.
GROUP_MINT_FIXED_SIZE: Final = (
    token2022.BASE_ACCOUNT_SIZE + 1 + (4 + 64) + group.GROUP_POINTER_TLV
)


def group_fields(event_id: UUID) -> list[tuple[str, str]]:
    """The group's metadata fields: which event it is."""
    return [(EVENT_ID_FIELD, str(event_id))]


def group_mint_size(name: str, symbol: str, event_id: UUID) -> int:
    """The group mint's final size: its fixed extensions, its metadata and its TokenGroup."""
    metadata = token2022.metadata_tlv_size(name, symbol, "", group_fields(event_id))
    return GROUP_MINT_FIXED_SIZE + metadata + group.TOKEN_GROUP_TLV


def build_event_group(
    *,
    authority: Signer,
    group_mint: Keypair,
    name: str,
    symbol: str,
    event_id: UUID,
    memo: str,
    recent_blockhash: Hash,
    max_size: int = group.MAX_GROUP_SIZE,
    prefunded_lamports: int = 0,
    group_address: Pubkey | None = None,
) -> SignedTx:
    """One transaction creating an event's group: a mint (supply 0) with GroupPointer and
    TokenGroup in itself, and TokenMetadata naming the event, paid by the authority.

    The mint address is derived per (tenant, event), so a second creation fails: the
    account exists. `prefunded_lamports`: lamports someone already sent to that address.
    """
    nft._check_text("name", name, NAME_MAX_BYTES, allow_empty=False)
    nft._check_text("symbol", symbol, SYMBOL_MAX_BYTES)
    instructions = nft._prelude(None, memo)
    owner, payer, signers = nft._signers(authority, None)
    address = group_address if group_address is not None else nft._public_key(group_mint)
    signers[address] = group_mint
    lamports = token2022.rent_exempt_lamports(group_mint_size(name, symbol, event_id))
    instructions += nft._mint_account(
        payer, address, lamports, prefunded_lamports, GROUP_MINT_FIXED_SIZE
    )
    instructions += [
        token2022.initialize_metadata_pointer(address, owner, address),
        group.initialize_group_pointer(address, owner, address),
        initialize_mint2(InitializeMint2Params(
            decimals=NFT_DECIMALS, program_id=TOKEN_2022_PROGRAM_ID, mint=address,
            mint_authority=owner,
        )),
        group.initialize_group(
            group=address, mint_authority=owner, update_authority=owner, max_size=max_size
        ),
        token2022.initialize_token_metadata(
            mint=address, update_authority=owner, mint_authority=owner, name=name,
            symbol=symbol, uri="",
        ),
    ]
    instructions += [
        token2022.update_token_metadata_field(
            mint=address, update_authority=owner, field=key, value=value
        )
        for key, value in group_fields(event_id)
    ]
    instructions.append(token2022.memo(memo))
    return nft._sign(signers, payer, instructions, recent_blockhash)


def build_verify(
    *,
    authority: Signer,
    mint: Pubkey,
    group_address: Pubkey,
    memo: str,
    recent_blockhash: Hash,
    compute: ComputeBudget | None = None,
    payer: Signer | None = None,
    group_authority: Signer | None = None,
) -> SignedTx:
    """Make the ticket's mint a member of its event's group, then remove its mint authority.

    `authority` is the member mint's mint authority; `group_authority` the group's update
    authority when it is another key (during an authority rotation; default: the same).

    InitializeMember needs the member mint's mint authority, which the mint transaction
    keeps for this; once the ticket is a member nothing more is ever minted, so the
    authority goes in the same transaction (a replay then fails: there is none to sign).
    The mint was funded for its TokenGroupMember when it was created.
    """
    instructions = nft._prelude(compute, memo)
    owner, payer_key, signers = nft._signers(authority, payer)
    group_owner = owner
    if group_authority is not None:
        group_owner = nft._public_key(group_authority)
        signers[group_owner] = group_authority
    instructions += [
        group.initialize_member(
            member=mint, member_mint_authority=owner, group=group_address,
            group_update_authority=group_owner,
        ),
        nft._mint_templates(owner).remove_mint_authority.rebind(mint),
        token2022.memo(memo),
    ]
    return nft._sign(signers, payer_key, instructions, recent_blockhash)
