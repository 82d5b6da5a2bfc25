"""Decide and record one attempt: check the ticket, build and sign, insert the row.

Runs inside a tenant transaction that holds the request, ticket and transfer locks.
Nothing here sends: the caller sends the recorded bytes after the commit.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from uuid import UUID

from solders.hash import Hash
from solders.pubkey import Pubkey
from solders.system_program import ID as SYSTEM_PROGRAM_ID

from chainworker.chain import fees, nft, token2022
from chainworker.chain.errors import ChainError
from chainworker.db import audit, tickets, transactions
from chainworker.db.pool import Connection
from chainworker.db.requests import RequestRow
from chainworker.jobs.context import PRIORITY_FEE_TTL_SECONDS, WorkerContext
from chainworker.lifecycle import ticket_rules
from chainworker.lifecycle.ticket_rules import Refusal, RefusalCode
from chainworker.obs import logs

LAMPORTS_PER_SIGNATURE = 5_000
# Rent of a Token-2022 associated token account (ImmutableOwner): 170 bytes.
TOKEN_ACCOUNT_SIZE = 170
# Used when simulation cannot answer (e.g. the operation would fail on chain anyway).
FALLBACK_UNITS = {"mint": 80_000, "transfer": 50_000, "burn": 15_000}

log = logs.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Prepared:
    tx_id: UUID
    signature: str
    raw: bytes
    estimated_cost: int


class Refused(Exception):
    """The request cannot be carried out as asked; the ticket stays unchanged."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _metadata_name(ticket: tickets.TicketRow) -> str:
    label = ticket.ticket_number or str(ticket.id)[:8]
    name = f"{ticket.event_name or 'Ticket'} #{label}"
    encoded = name.encode("utf-8")[: nft.NAME_MAX_BYTES]
    return encoded.decode("utf-8", "ignore")


async def wallets_of(
    ctx: WorkerContext, conn: Connection, tenant_id: UUID, user_ids: list[UUID]
) -> dict[UUID, Pubkey]:
    """Each user's wallet now: registered, else the custodial address derived for them.

    Where an NFT is sent (a mint's holder, a transfer's recipient); never where one is
    taken from: a user may register a new wallet after the NFT reached the old one.
    """
    registered = await tickets.wallet_addresses(conn, user_ids)
    holders: dict[UUID, Pubkey] = {}
    for user_id in user_ids:
        address = registered.get(user_id)
        if address is None:
            holders[user_id] = ctx.custodial_wallet(tenant_id, user_id)
            continue
        try:
            holders[user_id] = Pubkey.from_string(address)
        except ValueError:
            message = f"wallet {address!r} is not a public key"
            raise Refused(RefusalCode.INVALID_WALLET, message) from None
    return holders


async def _compute_budget(
    ctx: WorkerContext, op: str, draft: Callable[[], Awaitable[nft.SignedTx]]
) -> nft.ComputeBudget:
    """The unit limit from a simulation of this kind of transaction (reused for a while)."""
    units = ctx.cached_units(op)
    if units is None:
        try:
            units = await ctx.rpc.simulate_units((await draft()).transaction)
        except ChainError:
            units = FALLBACK_UNITS[op]
        ctx.remember_units(op, units)
    fee = ctx.priority_fee
    if fee is None or time.monotonic() - fee[1] > PRIORITY_FEE_TTL_SECONDS:
        recent = await ctx.rpc.recent_prioritization_fees()
        price = fees.compute_unit_price(
            recent,
            ctx.settings.priority_fee_percentile,
            ctx.settings.priority_fee_max_microlamports,
        )
        fee = ctx.priority_fee = (price, time.monotonic())
    limit = fees.compute_unit_limit(
        units, ctx.settings.compute_unit_margin, ctx.settings.compute_unit_headroom
    )
    return nft.ComputeBudget(unit_limit=limit, unit_price_microlamports=fee[0])


def _cost(signers: int, budget: nft.ComputeBudget, rent: int) -> int:
    priority = (budget.unit_limit or 0) * (budget.unit_price_microlamports or 0) // 1_000_000
    return signers * LAMPORTS_PER_SIGNATURE + priority + rent


async def prepare_attempt(
    ctx: WorkerContext,
    conn: Connection,
    request: RequestRow,
    *,
    attempt: int,
    parent_tx_id: UUID | None,
    job_id: str | None,
    seen_height: int = 0,
) -> Prepared:
    """Check, build, sign and record attempt `attempt` of `request`. Raises Refused.

    `seen_height` is a block height already observed: the blockhash must outlive it.
    """
    ticket = await tickets.lock_ticket(conn, request.ticket_id)
    transfer = None
    if request.transfer_id is not None:
        transfer = await tickets.lock_transfer(conn, request.transfer_id)
    ticket = check_request(request, ticket, transfer)

    blockhash, last_valid = await ctx.rpc.latest_blockhash(valid_beyond=seen_height)
    wallets = await wallets_of(ctx, conn, request.tenant_id, users_of(ticket, transfer))
    new = await sign_attempt(
        ctx, request, ticket, transfer, wallets, blockhash, last_valid,
        attempt=attempt, parent_tx_id=parent_tx_id, job_id=job_id,
    )
    if await ctx.tenant_has_spend_limit(conn, request.tenant_id):
        # Reserved until the attempt settles; recorded with it in this transaction.
        [refusal] = await audit.reserve_spend(conn, [new.estimated_lamports])
        if refusal is not None:
            raise Refused(RefusalCode.SPEND_LIMIT, refusal)
        new = replace(new, spend_reserved=new.estimated_lamports)
    tx_id = await transactions.record_attempt(conn, new)
    return Prepared(tx_id, new.signature, new.serialized_tx, new.estimated_lamports)


async def sign_attempt(
    ctx: WorkerContext,
    request: RequestRow,
    ticket: tickets.TicketRow,
    transfer: tickets.TransferRow | None,
    wallets: dict[UUID, Pubkey],
    blockhash: Hash,
    last_valid: int,
    *,
    attempt: int,
    parent_tx_id: UUID | None,
    job_id: str | None,
) -> transactions.NewAttempt:
    """Build and sign attempt `attempt` of a checked request: the row to record. No writes.

    A transfer or burn starts where the NFT is (`source_of`); a mint or transfer ends in
    the wallet recorded with the attempt, which the outcome then writes to the ticket.
    """
    memo = f"cw:{request.id}:{attempt}"
    prefunded = await _prefunded_mint(ctx, request, attempt)
    assert ticket.user_id is not None
    source = None if request.operation == "mint" else await source_of(ctx, ticket, attempt)
    if request.operation == "transfer":
        assert transfer is not None
        if transfer.to_user_id is None:
            raise Refused(RefusalCode.NO_HOLDER, "the transfer has no recipient")
        destination: Pubkey | None = wallets[transfer.to_user_id]
    elif request.operation == "mint":
        destination = wallets[ticket.user_id]
    else:
        destination = None
    ends = _Ends(source, destination)

    async def draft() -> nft.SignedTx:
        return _build(ctx, request, ticket, ends, memo, blockhash, None, prefunded)[0]

    budget = await _compute_budget(ctx, request.operation, draft)
    signed, rent, signers = _build(ctx, request, ticket, ends, memo, blockhash, budget, prefunded)
    return transactions.NewAttempt(
        tenant_id=request.tenant_id,
        ticket_id=ticket.id,
        event_id=ticket.event_id,
        transfer_id=request.transfer_id,
        request_id=request.id,
        op=request.operation,
        signature=str(signed.signature),
        blockhash=str(blockhash),
        last_valid_block_height=last_valid,
        serialized_tx=signed.raw,
        attempt=attempt,
        parent_tx_id=parent_tx_id,
        job_id=job_id,
        max_retries=ctx.policy.max_retries,
        estimated_lamports=_cost(signers, budget, rent),
        estimated_rent=rent,
        source=str(source) if source is not None else None,
        destination=str(destination) if destination is not None else None,
    )


@dataclass(frozen=True, slots=True)
class _Ends:
    """Where the NFT is taken from (transfer, burn) and where it goes (mint, transfer)."""

    source: Pubkey | None
    destination: Pubkey | None


async def source_of(ctx: WorkerContext, ticket: tickets.TicketRow, attempt: int) -> Pubkey:
    """Where the ticket's NFT is now, for a transfer or burn to start from.

    The wallet chainworker last sent it to (`tickets.wallet_address`) is the answer while
    only the platform can have moved it: a custodial wallet, on a first attempt. Otherwise
    the chain says: an external holder can move the NFT on their own, and an earlier
    attempt of this request may have landed after all.
    """
    assert ticket.user_id is not None and ticket.token_mint is not None
    recorded = _public_key(ticket.wallet_address)
    custodial = ctx.custodial_wallet(ticket.tenant_id, ticket.user_id)
    if recorded is not None and recorded == custodial and attempt == 1:
        return recorded
    found = await ctx.rpc.get_token_holder(Pubkey.from_string(ticket.token_mint))
    if found is None:
        raise Refused(RefusalCode.NFT_MISSING, "no wallet holds the ticket's NFT on chain")
    owner = found[0]
    if recorded is not None and owner != recorded:
        log.warning("the NFT is not where it was sent; moving it from where it is",
                    ticket_id=str(ticket.id), recorded=str(recorded), holder=str(owner))
    return owner


def _public_key(text: str | None) -> Pubkey | None:
    if text is None:
        return None
    try:
        return Pubkey.from_string(text)
    except ValueError:
        return None


async def _prefunded_mint(ctx: WorkerContext, request: RequestRow, attempt: int) -> int:
    """Lamports already at the mint address; only later attempts look (one read each)."""
    if request.operation != "mint" or attempt == 1:
        return 0
    return await prefunded_mint_lamports(ctx, request.tenant_id, request.ticket_id)


async def prefunded_mint_lamports(ctx: WorkerContext, tenant_id: UUID, ticket_id: UUID) -> int:
    """Lamports someone sent to the ticket's mint address before the mint was created there.

    The address is secret until a first attempt is sent; once it is public, anyone can
    fund it and so make CreateAccount fail. 0 when the address holds anything else.
    """
    account = await ctx.rpc.get_account(ctx.mint_address(tenant_id, ticket_id))
    if account is None or account.owner != SYSTEM_PROGRAM_ID or account.data:
        return 0
    return account.lamports


def screen(request: RequestRow | None, op: str) -> str | None:
    """Why a job for `op` has nothing to carry out on this request; None when it has."""
    if request is None:
        return "unknown request"  # another tenant's id, or never recorded
    if request.operation != op:
        return f"rejected: request is a {request.operation}, not a {op}"
    if request.status != "queued":
        return f"nothing to do: request is {request.status}"
    return None


def check_request(
    request: RequestRow, ticket: tickets.TicketRow | None, transfer: tickets.TransferRow | None
) -> tickets.TicketRow:
    """The ticket, when its state allows the request (both locked); else Refused."""
    if ticket is None:
        raise Refused(RefusalCode.UNKNOWN_TICKET, f"no ticket {request.ticket_id} for this tenant")
    if request.transfer_id is not None and (transfer is None or transfer.ticket_id != ticket.id):
        raise Refused(RefusalCode.TRANSFER_MISSING, "no such transfer for this ticket")
    verdict = ticket_rules.check_operation(
        request.operation,
        ticket.status,
        token_mint=ticket.token_mint,
        transfer_status=transfer.status if transfer else None,
        burn_reason=request.reason,
    )
    if isinstance(verdict, Refusal):
        raise Refused(verdict.code, verdict.message)
    if ticket.user_id is None:
        raise Refused(RefusalCode.NO_HOLDER, "the ticket has no holder")
    if transfer is not None and transfer.from_user_id not in (None, ticket.user_id):
        # An earlier transfer of the chain did not happen: this one's sender has nothing.
        raise Refused(RefusalCode.NOT_HOLDER, "the transfer's sender does not hold the ticket")
    return ticket


def users_of(ticket: tickets.TicketRow, transfer: tickets.TransferRow | None) -> list[UUID]:
    """The users whose wallets the transaction touches."""
    users = [ticket.user_id] if ticket.user_id else []
    if transfer is not None:
        users += [u for u in (transfer.from_user_id, transfer.to_user_id) if u is not None]
    return sorted(set(users))


def _build(
    ctx: WorkerContext,
    request: RequestRow,
    ticket: tickets.TicketRow,
    ends: _Ends,
    memo: str,
    blockhash: Hash,
    budget: nft.ComputeBudget | None = None,
    prefunded: int = 0,
) -> tuple[nft.SignedTx, int, int]:
    """The signed transaction, the rent it pays and how many signatures it carries."""
    tenant = request.tenant_id
    try:
        if request.operation == "mint":
            assert ends.destination is not None
            mint, mint_address = ctx.mint_key(tenant, ticket.id)
            name = _metadata_name(ticket)
            uri = ctx.settings.nft_uri_template.format(
                tenant_id=tenant, ticket_id=ticket.id, event_id=ticket.event_id
            )
            fields = [
                (nft.TICKET_ID_FIELD, str(ticket.id)),
                (nft.EVENT_ID_FIELD, str(ticket.event_id)),
            ]
            size = token2022.final_mint_size(name, ctx.settings.nft_symbol, uri, fields)
            # A prefunded mint address already holds part of the mint's rent.
            rent = max(0, token2022.rent_exempt_lamports(size) - prefunded)
            rent += token2022.rent_exempt_lamports(TOKEN_ACCOUNT_SIZE)
            signed = nft.build_mint(
                authority=ctx.authority, mint=mint, mint_address=mint_address,
                holder=ends.destination, name=name, symbol=ctx.settings.nft_symbol, uri=uri,
                ticket_id=ticket.id, event_id=ticket.event_id, memo=memo,
                recent_blockhash=blockhash, compute=budget, prefunded_lamports=prefunded,
            )
            return signed, rent, 2
        assert ticket.token_mint is not None and ends.source is not None
        mint_key = Pubkey.from_string(ticket.token_mint)
        if request.operation == "transfer":
            assert ends.destination is not None
            signed = nft.build_transfer(
                authority=ctx.authority, mint=mint_key, from_holder=ends.source,
                to_holder=ends.destination, memo=memo, recent_blockhash=blockhash,
                compute=budget,
            )
            return signed, token2022.rent_exempt_lamports(TOKEN_ACCOUNT_SIZE), 1
        signed = nft.build_burn(
            authority=ctx.authority, mint=mint_key, holder=ends.source, memo=memo,
            recent_blockhash=blockhash, compute=budget,
        )
        return signed, 0, 1
    except ValueError as error:
        raise Refused(RefusalCode.INVALID_INPUT, str(error)) from None
