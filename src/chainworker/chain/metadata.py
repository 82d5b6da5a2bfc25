"""A ticket NFT's metadata update: TokenMetadata UpdateField and RemoveKey, signed by the
platform authority as update authority, with the rent the account needs once it has grown.

Pure builders: no I/O. The update is planned from the mint account as read from the chain
(`read_mint`, `plan_update`), never from what the database remembers of it: the size of the
account, and so its rent, follows from the metadata it holds now and the change.

Token-2022 reallocates the mint for the new metadata but adds no lamports: when the account
grows, the payer transfers what its new size needs to stay rent exempt, in the same
transaction and before the updates. The steps run in `lifecycle.metadata.steps`' order
(removals, then the fields that shrink it, then those that grow it), so the account is never
larger on the way than at the end. A change too large for one packet is refused
(`nft.TooLarge`, a ValueError) before anything is sent.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass
from typing import Final

from solders.hash import Hash
from solders.instruction import AccountMeta, Instruction
from solders.pubkey import Pubkey
from solders.system_program import TransferParams, transfer

from chainworker.chain import group, token2022
from chainworker.chain.nft import ComputeBudget, SignedTx, TooLarge, _prelude, _sign, _signers
from chainworker.chain.signer import Signer
from chainworker.chain.token2022 import TOKEN_2022_PROGRAM_ID
from chainworker.lifecycle import metadata
from chainworker.lifecycle.metadata import Metadata, MetadataChange, Step

# RemoveKey: disc + idempotent (bool, one byte) + the key (borsh string), as in
# spl-token-metadata-interface's RemoveKey { idempotent, key }.
_REMOVE_KEY: Final = hashlib.sha256(b"spl_token_metadata_interface:remove_key_ix").digest()[:8]
_BASE_FIELD: Final = {
    metadata.NAME: token2022.FIELD_NAME,
    metadata.SYMBOL: token2022.FIELD_SYMBOL,
    metadata.URI: token2022.FIELD_URI,
}


def remove_token_metadata_key(
    *, mint: Pubkey, update_authority: Pubkey, key: str, idempotent: bool = True
) -> Instruction:
    """TokenMetadata RemoveKey of a custom field; idempotent: no error when it is absent."""
    encoded = key.encode("utf-8")
    data = _REMOVE_KEY + bytes([int(idempotent)]) + struct.pack("<I", len(encoded)) + encoded
    accounts = [AccountMeta(mint, False, True), AccountMeta(update_authority, True, False)]
    return Instruction(TOKEN_2022_PROGRAM_ID, data, accounts)


def step_instruction(mint: Pubkey, update_authority: Pubkey, step: Step) -> Instruction:
    """The UpdateField or RemoveKey of one step (name, symbol and uri are the base fields)."""
    if step.value is None:
        return remove_token_metadata_key(mint=mint, update_authority=update_authority,
                                         key=step.key)
    field: int | str = _BASE_FIELD.get(step.key, step.key)
    return token2022.update_token_metadata_field(
        mint=mint, update_authority=update_authority, field=field, value=step.value
    )


@dataclass(frozen=True, slots=True)
class MintOnChain:
    """What an update is planned from: the mint account as it is on chain."""

    size: int  # bytes of account data
    lamports: int
    update_authority: Pubkey | None
    metadata: Metadata
    # Bytes still to come whose rent the mint already holds: its TokenGroupMember, when it
    # has a GroupMemberPointer and is no member yet (its verify appends it, adding no lamports).
    reserved: int = 0


def read_mint(data: bytes, lamports: int) -> MintOnChain:
    """The mint account's size, balance and metadata; ValueError when it holds no metadata."""
    parsed = token2022.parse_mint(data)
    found = parsed.metadata
    if found is None:
        raise ValueError("the ticket's mint holds no token metadata")
    text = Metadata(found.name, found.symbol, found.uri, found.additional)
    groups = group.parse_group_extensions(data)
    pending = groups.member_pointer is not None and groups.member is None
    reserved = group.TOKEN_GROUP_MEMBER_TLV if pending else 0
    return MintOnChain(len(data), lamports, found.update_authority, text, reserved)


@dataclass(frozen=True, slots=True)
class Plan:
    """The update's instructions in order, the account's size after them, and the lamports
    added to the mint first (0 when it does not grow past what it holds)."""

    steps: tuple[Step, ...]
    size: int
    top_up: int


def _packed(text: Metadata) -> int:
    return token2022.metadata_tlv_size(text.name, text.symbol, text.uri, text.additional)


def plan_update(mint: MintOnChain, change: MetadataChange) -> Plan:
    """How `change` is carried out on this mint account."""
    steps = tuple(metadata.steps(mint.metadata, change))
    after = metadata.apply(mint.metadata, change)
    size = mint.size + _packed(after) - _packed(mint.metadata)
    # Never larger on the way than at the end or the start (the steps' order), and the
    # start is paid for: the end's rent is enough, with the membership still to come kept
    # paid for (else the update would spend it and the verify fail for want of rent).
    top_up = max(0, token2022.rent_exempt_lamports(size + mint.reserved) - mint.lamports)
    return Plan(steps, size, top_up)


def build_update(
    *,
    authority: Signer,
    mint: Pubkey,
    plan: Plan,
    memo: str,
    recent_blockhash: Hash,
    compute: ComputeBudget | None = None,
    payer: Signer | None = None,
) -> SignedTx:
    """One transaction carrying out the plan, signed by the authority as update authority.

    `payer` pays the fee and the top-up (default: the authority). TooLarge when the change
    does not fit in one packet.
    """
    if not plan.steps:
        raise ValueError("a metadata update needs at least one step")
    instructions = _prelude(compute, memo)
    owner, payer_key, signers = _signers(authority, payer)
    if plan.top_up > 0:
        top_up = TransferParams(from_pubkey=payer_key, to_pubkey=mint, lamports=plan.top_up)
        instructions.append(transfer(top_up))
    instructions += [step_instruction(mint, owner, step) for step in plan.steps]
    instructions.append(token2022.memo(memo))
    try:
        return _sign(signers, payer_key, instructions, recent_blockhash)
    except TooLarge as error:
        raise TooLarge(
            f"the metadata change does not fit in one transaction ({error}): "
            "set fewer or shorter values at a time"
        ) from None
