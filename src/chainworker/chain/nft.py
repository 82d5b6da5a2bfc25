"""Signed transactions for ticket NFTs on Token-2022: mint, transfer, burn.

Pure builders: no I/O. The caller supplies a recent blockhash and, optionally, compute-budget
values; the result carries the signed transaction, its signature and its wire bytes, which is
everything `pending_transactions` records before anything is sent.

The platform authority is the mint's update authority and its permanent delegate, so
transfers and burns never need the holder's signature. It pays the fees and the rent too,
unless a fee payer is given: then the payer is the only writable signer and the authority
signs read-only, so transactions paid by different payers share no write lock.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Final
from uuid import UUID

from solders.compute_budget import set_compute_unit_limit, set_compute_unit_price
from solders.hash import Hash
from solders.instruction import AccountMeta, Instruction
from solders.message import MessageV0, to_bytes_versioned
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.system_program import (
    AllocateParams,
    AssignParams,
    CreateAccountParams,
    TransferParams,
    allocate,
    assign,
    create_account,
    transfer,
)
from solders.transaction import VersionedTransaction
from spl.token.constants import ASSOCIATED_TOKEN_PROGRAM_ID
from spl.token.instructions import (
    burn_checked,
    create_idempotent_associated_token_account,
    initialize_mint2,
    mint_to_checked,
    set_authority,
    transfer_checked,
)
from spl.token.models import (
    AuthorityType,
    BurnCheckedParams,
    InitializeMint2Params,
    MintToCheckedParams,
    SetAuthorityParams,
    TransferCheckedParams,
)

from chainworker.chain import group, keys, token2022
from chainworker.chain.signer import Signer
from chainworker.chain.token2022 import TOKEN_2022_PROGRAM_ID

PACKET_DATA_SIZE: Final = 1232
MAX_COMPUTE_UNITS: Final = 1_400_000

# Bounds that keep the largest mint transaction (both compute-budget instructions, the
# longest memo, the authority paying) inside one packet; tests build at exactly these
# sizes. The URI takes what is left: GroupMemberPointer and InitializeMintCloseAuthority
# (38 bytes) leave 117 of the 180 bytes it had.
NAME_MAX_BYTES: Final = 32
SYMBOL_MAX_BYTES: Final = 10
URI_MAX_BYTES: Final = 117
MEMO_MAX_BYTES: Final = 64

NFT_DECIMALS: Final = 0
TICKET_ID_FIELD: Final = "ticket_id"
EVENT_ID_FIELD: Final = "event_id"


@dataclass(frozen=True)
class ComputeBudget:
    """Optional SetComputeUnitLimit / SetComputeUnitPrice values, placed first."""

    unit_limit: int | None = None
    unit_price_microlamports: int | None = None

    def instructions(self) -> list[Instruction]:
        out: list[Instruction] = []
        if self.unit_limit is not None:
            if not 1 <= self.unit_limit <= MAX_COMPUTE_UNITS:
                raise ValueError(f"compute unit limit must be 1..{MAX_COMPUTE_UNITS}")
            out.append(set_compute_unit_limit(self.unit_limit))
        if self.unit_price_microlamports is not None:
            if self.unit_price_microlamports < 0:
                raise ValueError("compute unit price must not be negative")
            out.append(set_compute_unit_price(self.unit_price_microlamports))
        return out


@dataclass(frozen=True)
class SignedTx:
    transaction: VersionedTransaction
    signature: Signature
    raw: bytes


def holder_token_account(holder: Pubkey, mint: Pubkey) -> Pubkey:
    """The holder's associated token account for a ticket mint."""
    return _holder_account(holder, mint)[0]


@functools.lru_cache(maxsize=8192)
def _holder_account(holder: Pubkey, mint: Pubkey) -> tuple[Pubkey, int]:
    """(address, bump) of the holder's associated token account: searched once per pair,
    though an attempt needs it for its budget and twice in its instructions."""
    return Pubkey.find_program_address(
        [bytes(holder), bytes(TOKEN_2022_PROGRAM_ID), bytes(mint)], ASSOCIATED_TOKEN_PROGRAM_ID
    )


def address_search_steps(holder: Pubkey, mint: Pubkey) -> int:
    """Bumps tried past the first when the holder's token account address is searched.

    The associated token program searches it on chain at every create, each step costing
    a program-address derivation (1,500 units): the one part of a transaction's units
    that differs from one holder to the next.
    """
    return 255 - _holder_account(holder, mint)[1]


class TooLarge(ValueError):
    """The transaction does not fit in one packet."""


_public_key = keys.public_key


def _signers(
    authority: Signer, payer: Signer | None
) -> tuple[Pubkey, Pubkey, dict[Pubkey, Signer]]:
    """(authority's key, payer's key, signers by key); the authority pays without a payer."""
    authority_key = _public_key(authority)
    payer_key = authority_key if payer is None else _public_key(payer)
    signers = {authority_key: authority}
    if payer is not None:
        signers[payer_key] = payer
    return authority_key, payer_key, signers


# Stand-ins for a ticket's mint and holder account in the instruction templates below.
_MINT_SLOT: Final = Pubkey(bytes([1] * 32))
_ACCOUNT_SLOT: Final = Pubkey(bytes([2] * 32))
_OWNER_SLOT: Final = Pubkey(bytes([3] * 32))
_PAYER_SLOT: Final = Pubkey(bytes([4] * 32))


@dataclass(frozen=True)
class _Template:
    """An instruction built once by spl's builder, with stand-ins for per-ticket accounts."""

    instruction: Instruction

    def rebind(self, mint: Pubkey, account: Pubkey | None = None) -> Instruction:
        slots = {_MINT_SLOT: mint}
        if account is not None:
            slots[_ACCOUNT_SLOT] = account
        return self.rebind_all(slots)

    def rebind_all(self, slots: dict[Pubkey, Pubkey]) -> Instruction:
        return Instruction(
            self.instruction.program_id,
            self.instruction.data,
            [
                AccountMeta(slots.get(meta.pubkey, meta.pubkey), meta.is_signer,
                            meta.is_writable)
                for meta in self.instruction.accounts
            ],
        )


@functools.lru_cache(maxsize=1)
def _create_holder_account_template() -> tuple[_Template, Pubkey]:
    """spl's CreateIdempotent for stand-in accounts, and the stand-in account it creates."""
    instruction = create_idempotent_associated_token_account(
        _PAYER_SLOT, _OWNER_SLOT, _MINT_SLOT, TOKEN_2022_PROGRAM_ID
    )
    return _Template(instruction), holder_token_account(_OWNER_SLOT, _MINT_SLOT)


def _create_holder_account(payer: Pubkey, holder: Pubkey, mint: Pubkey) -> Instruction:
    """The holder's token account, created unless it exists, funded by `payer` (spl's
    builder searches the account's address again each time; ours is remembered)."""
    template, stand_in = _create_holder_account_template()
    return template.rebind_all({
        _PAYER_SLOT: payer, _OWNER_SLOT: holder, _MINT_SLOT: mint,
        stand_in: holder_token_account(holder, mint),
    })


@dataclass(frozen=True)
class _MintTemplates:
    initialize_mint: _Template
    mint_one: _Template
    remove_mint_authority: _Template


@functools.lru_cache(maxsize=4)
def _mint_templates(authority: Pubkey) -> _MintTemplates:
    """The mint's instructions whose data is the same for every ticket.

    spl's builders encode instruction data with `construct`, which costs more than the
    rest of the transaction together; built once per authority, they are only rebound.
    """
    return _MintTemplates(
        initialize_mint=_Template(initialize_mint2(
            InitializeMint2Params(
                decimals=NFT_DECIMALS,
                program_id=TOKEN_2022_PROGRAM_ID,
                mint=_MINT_SLOT,
                mint_authority=authority,
            )
        )),
        mint_one=_Template(mint_to_checked(
            MintToCheckedParams(
                program_id=TOKEN_2022_PROGRAM_ID,
                mint=_MINT_SLOT,
                dest=_ACCOUNT_SLOT,
                mint_authority=authority,
                amount=1,
                decimals=NFT_DECIMALS,
            )
        )),
        remove_mint_authority=_Template(set_authority(
            SetAuthorityParams(
                program_id=TOKEN_2022_PROGRAM_ID,
                account=_MINT_SLOT,
                authority=AuthorityType.MINT_TOKENS,
                current_authority=authority,
                new_authority=None,
            )
        )),
    )


def _check_text(label: str, value: str, max_bytes: int, *, allow_empty: bool = True) -> None:
    size = len(value.encode("utf-8"))
    if size > max_bytes:
        raise ValueError(f"{label} is {size} bytes; at most {max_bytes} bytes are allowed")
    if not allow_empty and size == 0:
        raise ValueError(f"{label} must not be empty")


def _sign(
    signers: dict[Pubkey, Signer],
    payer: Pubkey,
    instructions: list[Instruction],
    recent_blockhash: Hash,
) -> SignedTx:
    """Compile and sign. Signers come with their public keys: deriving one from a keypair
    costs as much as a signature, and VersionedTransaction(message, keypairs) derives each."""
    message = MessageV0.try_compile(payer, instructions, [], recent_blockhash)
    required = message.account_keys[: message.header.num_required_signatures]
    if set(required) != set(signers):
        raise ValueError("the signers do not match the transaction's required signers")
    data = to_bytes_versioned(message)
    transaction = VersionedTransaction.populate(
        message, [signers[key].sign_message(data) for key in required]
    )
    raw = bytes(transaction)
    if len(raw) > PACKET_DATA_SIZE:
        raise TooLarge(f"transaction is {len(raw)} bytes; the limit is {PACKET_DATA_SIZE}")
    return SignedTx(transaction, transaction.signatures[0], raw)


def _prelude(compute: ComputeBudget | None, memo: str) -> list[Instruction]:
    _check_text("memo", memo, MEMO_MAX_BYTES, allow_empty=False)
    return compute.instructions() if compute else []


def build_mint(
    *,
    authority: Signer,
    mint: Signer,
    holder: Pubkey,
    name: str,
    symbol: str,
    uri: str,
    ticket_id: UUID,
    event_id: UUID,
    memo: str,
    recent_blockhash: Hash,
    compute: ComputeBudget | None = None,
    prefunded_lamports: int = 0,
    mint_address: Pubkey | None = None,
    payer: Signer | None = None,
    close_authority: bool = True,
    group_member: bool = True,
) -> SignedTx:
    """One transaction creating the ticket's NFT and giving it to `holder`.

    The mint account is created at the size of its fixed extensions and funded for its final
    size, because Token-2022 grows it for the metadata (and, at verification, for its
    TokenGroupMember) without adding lamports.

    The mint carries GroupMemberPointer, which Token-2022 accepts only before InitializeMint,
    so that the ticket can later join its event's group. The mint authority (the platform
    authority) is kept: InitializeMember needs the member mint's mint authority to sign, so
    the verify transaction (`collection.build_verify`) adds the membership and then removes
    the mint authority, fixing the supply at 1 from then on. `group_member=False` builds the
    layout of mints made before event collections (no pointer, the mint authority removed
    here), which can never become members.
    `prefunded_lamports`: someone already sent lamports to the mint address, so
    CreateAccount would fail; the account is then topped up, allocated and assigned instead.
    `mint_address`: `mint`'s public key, when the caller already has it (deriving it
    costs as much as a signature). `payer`: pays the fee and the rent (default: the
    authority); a second signature, 96 bytes more. `close_authority`: the authority may
    close the mint once its supply is 0 (a burn gets the rent back); False builds a mint
    as earlier releases did, without it.
    """
    _check_text("name", name, NAME_MAX_BYTES, allow_empty=False)
    _check_text("symbol", symbol, SYMBOL_MAX_BYTES)
    _check_text("uri", uri, URI_MAX_BYTES)
    instructions = _prelude(compute, memo)

    owner, payer_key, signers = _signers(authority, payer)
    mint_key = mint_address if mint_address is not None else _public_key(mint)
    signers[mint_key] = mint
    templates = _mint_templates(owner)
    fields = [(TICKET_ID_FIELD, str(ticket_id)), (EVENT_ID_FIELD, str(event_id))]
    size = token2022.final_mint_size(name, symbol, uri, fields, close_authority=close_authority)
    space = token2022.fixed_mint_size(close_authority=close_authority)
    if group_member:
        size += group.MEMBER_EXTENSIONS_SIZE
        space += group.GROUP_MEMBER_POINTER_TLV
    instructions += _mint_account(
        payer_key, mint_key, token2022.rent_exempt_lamports(size), prefunded_lamports, space
    )
    instructions += [
        token2022.initialize_metadata_pointer(mint_key, owner, mint_key),
        token2022.initialize_permanent_delegate(mint_key, owner),
    ]
    if close_authority:
        instructions.append(token2022.initialize_mint_close_authority(mint_key, owner))
    if group_member:
        instructions.append(group.initialize_group_member_pointer(mint_key, owner, mint_key))
    instructions += [
        templates.initialize_mint.rebind(mint_key),
        token2022.initialize_token_metadata(
            mint=mint_key,
            update_authority=owner,
            mint_authority=owner,
            name=name,
            symbol=symbol,
            uri=uri,
        ),
    ]
    instructions += [
        token2022.update_token_metadata_field(
            mint=mint_key, update_authority=owner, field=key, value=value
        )
        for key, value in fields
    ]
    instructions += [
        _create_holder_account(payer_key, holder, mint_key),
        templates.mint_one.rebind(mint_key, holder_token_account(holder, mint_key)),
    ]
    if not group_member:
        instructions.append(templates.remove_mint_authority.rebind(mint_key))
    instructions.append(token2022.memo(memo))
    return _sign(signers, payer_key, instructions, recent_blockhash)


def _mint_account(
    payer: Pubkey, mint: Pubkey, lamports: int, prefunded: int, space: int
) -> list[Instruction]:
    """The mint's account of `space` bytes, owned by Token-2022 and rent-exempt at
    `lamports`."""
    if prefunded <= 0:
        return [
            create_account(
                CreateAccountParams(
                    from_pubkey=payer,
                    to_pubkey=mint,
                    lamports=lamports,
                    space=space,
                    owner=TOKEN_2022_PROGRAM_ID,
                )
            )
        ]
    instructions = []
    if lamports > prefunded:
        top_up = TransferParams(from_pubkey=payer, to_pubkey=mint, lamports=lamports - prefunded)
        instructions.append(transfer(top_up))
    instructions += [
        allocate(AllocateParams(pubkey=mint, space=space)),
        assign(AssignParams(pubkey=mint, owner=TOKEN_2022_PROGRAM_ID)),
    ]
    return instructions


def build_transfer(
    *,
    authority: Signer,
    mint: Pubkey,
    from_holder: Pubkey,
    to_holder: Pubkey,
    memo: str,
    recent_blockhash: Hash,
    compute: ComputeBudget | None = None,
    payer: Signer | None = None,
) -> SignedTx:
    """Move the ticket (amount 1) from one holder to another, signed by the permanent delegate."""
    if from_holder == to_holder:
        raise ValueError("the new holder is the current holder")
    instructions = _prelude(compute, memo)
    owner, payer_key, signers = _signers(authority, payer)
    instructions += [
        _create_holder_account(payer_key, to_holder, mint),
        transfer_checked(
            TransferCheckedParams(
                program_id=TOKEN_2022_PROGRAM_ID,
                source=holder_token_account(from_holder, mint),
                mint=mint,
                dest=holder_token_account(to_holder, mint),
                owner=owner,
                amount=1,
                decimals=NFT_DECIMALS,
            )
        ),
        token2022.memo(memo),
    ]
    return _sign(signers, payer_key, instructions, recent_blockhash)


def build_burn(
    *,
    authority: Signer,
    mint: Pubkey,
    holder: Pubkey,
    memo: str,
    recent_blockhash: Hash,
    compute: ComputeBudget | None = None,
    payer: Signer | None = None,
    close_mint: bool = False,
    holder_signer: Signer | None = None,
) -> SignedTx:
    """Destroy the ticket (amount 1) in the holder's account, signed by the permanent delegate.

    `close_mint`: then close the mint, its supply now 0 (the authority is its close
    authority). `holder_signer`: the holder's keypair (a custodial wallet), which closes
    the holder's token account, now empty. Closed accounts' lamports go to the payer.
    """
    instructions = _prelude(compute, memo)
    owner, payer_key, signers = _signers(authority, payer)
    account = holder_token_account(holder, mint)
    instructions.append(
        burn_checked(
            BurnCheckedParams(
                program_id=TOKEN_2022_PROGRAM_ID,
                mint=mint,
                account=account,
                owner=owner,
                amount=1,
                decimals=NFT_DECIMALS,
            )
        )
    )
    if holder_signer is not None:
        holder_key = _public_key(holder_signer)
        if holder_key != holder:
            raise ValueError("the holder's signer is not the holder")
        signers[holder_key] = holder_signer
        instructions.append(token2022.close_account(account, payer_key, holder_key))
    if close_mint:
        instructions.append(token2022.close_account(mint, payer_key, owner))
    instructions.append(token2022.memo(memo))
    return _sign(signers, payer_key, instructions, recent_blockhash)
