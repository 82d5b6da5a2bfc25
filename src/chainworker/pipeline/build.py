"""The signed transaction of one attempt, from its draft: the instructions, the metadata
(name, URI, fields), the mint's size and the rent the attempt pays (a metadata update's
plan, made from the chain, comes with its draft).

Pure: no I/O, no writes; keys and settings come from the context. What goes into a draft
(the checked request, the wallets, where the NFT is, the blockhash, the budget) is decided
in `prepare`, which also turns a ValueError from here into a refusal.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING
from uuid import UUID

from solders.hash import Hash
from solders.keypair import Keypair
from solders.pubkey import Pubkey

from chainworker.chain import authority as chain_authority
from chainworker.chain import collection, group, metadata, nft, token2022
from chainworker.chain.signer import Signer
from chainworker.db import tickets
from chainworker.lifecycle.model import TxOp
from chainworker.pipeline.context import PipelineContext

if TYPE_CHECKING:
    from chainworker.pipeline.authorities import Rotation

# Rent of a Token-2022 associated token account (ImmutableOwner): 170 bytes.
TOKEN_ACCOUNT_SIZE = 170


@dataclass(frozen=True, slots=True)
class Closes:
    """What a burn closes once the token is gone, with the lamports each account held when
    read: the ticket's mint (its close authority is the platform's) and, for a custodial
    holder, their token account. Every lamport goes back to the payer."""

    mint_lamports: int
    holder: Keypair | None = None  # the custodial wallet, which signs its account's close
    holder_lamports: int = 0

    @property
    def lamports(self) -> int:
        return self.mint_lamports + self.holder_lamports

    @property
    def accounts(self) -> int:
        return 1 if self.holder is None else 2


@dataclass(frozen=True, slots=True)
class Draft:
    """Everything a signed transaction is made of but its compute budget."""

    op: TxOp
    tenant_id: UUID
    ticket: tickets.TicketRow
    # Where the NFT is taken from (transfer, burn) and where it goes (mint, transfer).
    source: Pubkey | None
    destination: Pubkey | None
    memo: str
    blockhash: Hash
    prefunded: int  # lamports already at a mint address (a later attempt of a mint)
    payer: Signer | None = None  # from the pool; None: the authority pays
    closes: Closes | None = None  # a burn's: None closes nothing (a mint without the authority)
    update: metadata.Plan | None = None  # a metadata update's plan, from the mint on chain
    group: Pubkey | None = None  # a verify: the event's group the mint joins
    # Who signs as the platform: the ticket's authority on chain (None: the authority).
    authority: Signer | None = None
    rotation: Rotation | None = None  # an authority rotation's plan, from the mint on chain
    group_authority: Signer | None = None  # a verify's group update authority, when another


@dataclass(frozen=True, slots=True)
class Built:
    signed: nft.SignedTx
    rent: int  # lamports of rent the transaction pays
    signatures: int
    payer: Signer | None  # who pays: the draft's payer, or None when the authority does
    reclaimed: int = 0  # lamports of rent the closed accounts give back to the payer


def build_attempt(ctx: PipelineContext, draft: Draft, budget: nft.ComputeBudget | None) -> Built:
    """The signed transaction, paid by the draft's payer; by the authority instead when a
    second signature would not fit in the packet (a mint with the longest values).

    ValueError when the ticket's values cannot go on chain (a name, a URI, a mint).
    """
    if draft.payer is not None:
        try:
            return _build(ctx, draft, budget)
        except nft.TooLarge:
            pass
    return _build(ctx, replace(draft, payer=None), budget)


def _build(ctx: PipelineContext, draft: Draft, budget: nft.ComputeBudget | None) -> Built:
    ticket, payer = draft.ticket, draft.payer
    authority = draft.authority or ctx.keys.authority
    cosigner = 0 if payer is None else 1
    tenant = draft.tenant_id
    if draft.op is TxOp.MINT:
        assert draft.destination is not None
        mint, mint_address = ctx.keys.mint_key(tenant, ticket.id)
        name = _metadata_name(ticket)
        uri = ctx.settings.nft_uri_template.format(
            tenant_id=tenant, ticket_id=ticket.id, event_id=ticket.event_id
        )
        fields = [
            (nft.TICKET_ID_FIELD, str(ticket.id)),
            (nft.EVENT_ID_FIELD, str(ticket.event_id)),
        ]
        size = token2022.final_mint_size(name, ctx.settings.nft_symbol, uri, fields)
        size += group.MEMBER_EXTENSIONS_SIZE  # funded now for its membership to come
        # A prefunded mint address already holds part of the mint's rent.
        rent = max(0, token2022.rent_exempt_lamports(size) - draft.prefunded)
        rent += token2022.rent_exempt_lamports(TOKEN_ACCOUNT_SIZE)
        signed = nft.build_mint(
            authority=authority, mint=mint, mint_address=mint_address,
            holder=draft.destination, name=name, symbol=ctx.settings.nft_symbol, uri=uri,
            ticket_id=ticket.id, event_id=ticket.event_id, memo=draft.memo,
            recent_blockhash=draft.blockhash, compute=budget,
            prefunded_lamports=draft.prefunded, payer=payer,
        )
        return Built(signed, rent, 2 + cosigner, payer)
    if draft.op is TxOp.METADATA_UPDATE and draft.rotation is not None:
        assert ticket.token_mint is not None
        rotation = draft.rotation
        signed = chain_authority.build_rotation(
            current=rotation.current, new=rotation.new, mint=Pubkey.from_string(ticket.token_mint),
            held=rotation.held, memo=draft.memo, recent_blockhash=draft.blockhash,
            compute=budget, payer=payer,
        )
        return Built(signed, 0, 1 + cosigner, payer)
    if draft.op is TxOp.METADATA_UPDATE:
        assert ticket.token_mint is not None and draft.update is not None
        signed = metadata.build_update(
            authority=authority, mint=Pubkey.from_string(ticket.token_mint), plan=draft.update,
            memo=draft.memo, recent_blockhash=draft.blockhash, compute=budget, payer=payer,
        )
        return Built(signed, draft.update.top_up, 1 + cosigner, payer)
    assert ticket.token_mint is not None
    mint_key = Pubkey.from_string(ticket.token_mint)
    if draft.op is TxOp.VERIFY:
        # No rent: the mint was funded for its TokenGroupMember when it was created.
        assert draft.group is not None
        signed = collection.build_verify(
            authority=authority, mint=mint_key, group_address=draft.group, memo=draft.memo,
            recent_blockhash=draft.blockhash, compute=budget, payer=payer,
            group_authority=draft.group_authority,
        )
        other = draft.group_authority is not None and draft.group_authority != authority
        return Built(signed, 0, 1 + cosigner + other, payer)
    assert draft.source is not None
    if draft.op is TxOp.TRANSFER:
        assert draft.destination is not None
        signed = nft.build_transfer(
            authority=authority, mint=mint_key, from_holder=draft.source,
            to_holder=draft.destination, memo=draft.memo,
            recent_blockhash=draft.blockhash, compute=budget, payer=payer,
        )
        return Built(
            signed, token2022.rent_exempt_lamports(TOKEN_ACCOUNT_SIZE), 1 + cosigner, payer
        )
    closes = draft.closes
    holder = closes.holder if closes is not None else None
    signed = nft.build_burn(
        authority=authority, mint=mint_key, holder=draft.source, memo=draft.memo,
        recent_blockhash=draft.blockhash, compute=budget, payer=payer,
        close_mint=closes is not None, holder_signer=holder,
    )
    signatures = 1 + cosigner + (holder is not None)
    return Built(signed, 0, signatures, payer, closes.lamports if closes is not None else 0)


def _metadata_name(ticket: tickets.TicketRow) -> str:
    label = ticket.ticket_number or str(ticket.id)[:8]
    name = f"{ticket.event_name or 'Ticket'} #{label}"
    encoded = name.encode("utf-8")[: nft.NAME_MAX_BYTES]
    return encoded.decode("utf-8", "ignore")
