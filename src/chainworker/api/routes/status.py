"""GET a ticket's chain view, a request's status, a transaction's status."""

from __future__ import annotations

import asyncio
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Path
from solders.pubkey import Pubkey

from chainworker.api.auth import Caller
from chainworker.api.context import ApiContext, get_context
from chainworker.api.isolation import Hidden
from chainworker.api.links import REQUEST, TICKET_CHAIN, TRANSACTION, on, to
from chainworker.api.problems import documented
from chainworker.api.schemas import (
    Attempt,
    Membership,
    OnChainHolder,
    RequestStatus,
    StateChange,
    TicketChain,
    TransactionStatus,
)
from chainworker.chain.errors import UNEXPECTED_ACCOUNT, ChainError
from chainworker.chain.rpc import SolanaRpc
from chainworker.db import audit, event_groups, requests, tickets, transactions
from chainworker.db.pool import tenant_transaction

router = APIRouter(prefix="/v1", tags=["status"])
Context = Annotated[ApiContext, Depends(get_context)]
ERRORS = documented(401, 404, 422, 503)
RECENT_REQUESTS = 5
RECENT_HISTORY = 20
HOLDER_TIMEOUT_SECONDS = 3.0
Signature = Annotated[
    str, Path(pattern=r"^[1-9A-HJ-NP-Za-km-z]{64,88}$", description="Base58 signature.")
]


async def _holder(rpc: SolanaRpc, token_mint: str) -> OnChainHolder:
    try:
        mint = Pubkey.from_string(token_mint)
        found = await asyncio.wait_for(rpc.get_token_holder(mint), HOLDER_TIMEOUT_SECONDS)
    except (ChainError, ValueError, TimeoutError, OSError) as error:
        return OnChainHolder(owner=None, amount=0, error=f"{type(error).__name__}: {error}")
    if found is None:
        return OnChainHolder(owner=None, amount=0)
    return OnChainHolder(owner=str(found[0]), amount=found[1])


async def _mint(
    rpc: SolanaRpc, token_mint: str, group: str | None
) -> tuple[Membership, bool | None]:
    """One read of the mint: its membership against the event's group (`group`), and
    whether no account is left at its address (a burn closed it; None: unknown)."""
    try:
        state = await asyncio.wait_for(
            rpc.get_mint_state(Pubkey.from_string(token_mint)), HOLDER_TIMEOUT_SECONDS
        )
    except (ChainError, ValueError, TimeoutError, OSError) as error:
        # An account there that is not a mint is still an account: the mint is not closed.
        unexpected = isinstance(error, ChainError) and error.kind == UNEXPECTED_ACCOUNT
        closed = False if unexpected else None
        return Membership(group=group, member_group=None, member_number=None, verified=False,
                          error=f"{type(error).__name__}: {error}"), closed
    member = state.groups.member if state is not None else None
    return Membership(
        group=group,
        member_group=str(member.group) if member is not None else None,
        member_number=member.member_number if member is not None else None,
        verified=member is not None and group is not None and str(member.group) == group,
    ), state is None


@router.get(
    "/tickets/{ticket_id}/chain",
    response_model=TicketChain,
    responses={
        **ERRORS,
        **on(
            200,
            GetLatestRequest=to(REQUEST, "get", "The latest request for the ticket.",
                                request_id="$response.body#/requests/0/request_id"),
            GetLiveTransaction=to(TRANSACTION, "get", "The live transaction, if any.",
                                  signature="$response.body#/live_transaction/signature"),
        ),
    },
    summary="The ticket on chain: mint, holder, membership, rent reclaimed, live transaction, "
    "requests, history",
)
async def ticket_chain(ticket_id: UUID, principal: Caller, context: Context) -> TicketChain:
    async with tenant_transaction(context.pool, principal.tenant_id, source="api") as conn:
        ticket = await tickets.get_ticket(conn, ticket_id)
        if ticket is None:
            raise Hidden("tickets", str(ticket_id))
        recent = await requests.latest_for_ticket(conn, ticket_id, RECENT_REQUESTS)
        request_views = [
            RequestStatus.of(row, await transactions.attempts_for_request(conn, row.id))
            for row in recent
        ]
        live = next(
            (
                a
                for view in request_views
                for a in view.transactions
                if a.status in ("pending", "confirming")
            ),
            None,
        )
        history = await tickets.state_history(conn, ticket_id, RECENT_HISTORY)
        reclaimed = await audit.reclaimed_lamports(conn, ticket_id)
        found = (await event_groups.of_events(conn, [ticket.event_id])).get(ticket.event_id)
    group = found.group_mint if found is not None and found.is_confirmed else None
    holder: OnChainHolder | None = None
    membership: Membership | None = None
    closed: bool | None = None
    if ticket.token_mint:
        holder, (membership, closed) = await asyncio.gather(
            _holder(context.rpc, ticket.token_mint), _mint(context.rpc, ticket.token_mint, group)
        )
    return TicketChain(
        ticket_id=ticket.id,
        event_id=ticket.event_id,
        status=ticket.status,
        token_mint=ticket.token_mint,
        holder=holder,
        mint_closed=closed,
        rent_reclaimed_lamports=reclaimed,
        membership=membership,
        live_transaction=Attempt.model_validate(live.model_dump()) if live else None,
        requests=request_views,
        history=[
            StateChange(
                previous_status=row.previous_status,
                new_status=row.new_status,
                actor_type=row.actor_type,
                reason=row.reason,
                source=row.source,
                created_at=row.created_at,
            )
            for row in history
        ],
    )


@router.get(
    "/requests/{request_id}",
    response_model=RequestStatus,
    responses={
        **ERRORS,
        **on(
            200,
            GetTransaction=to(TRANSACTION, "get", "The request's transaction, once sent.",
                              signature="$response.body#/signature"),
            GetFirstAttempt=to(TRANSACTION, "get", "Its first attempt, once signed.",
                               signature="$response.body#/transactions/0/signature"),
            GetTicketChain=to(TICKET_CHAIN, "get", "The ticket on chain.",
                              ticket_id="$response.body#/ticket_id"),
        ),
    },
    summary="A recorded request: status, attempts, slot, error",
)
async def request_status(request_id: UUID, principal: Caller, context: Context) -> RequestStatus:
    async with tenant_transaction(context.pool, principal.tenant_id, source="api") as conn:
        row = await requests.get_request(conn, request_id)
        if row is None:
            raise Hidden("chain_requests", str(request_id))
        attempts = await transactions.attempts_for_request(conn, request_id)
    return RequestStatus.of(row, attempts)


@router.get(
    "/transactions/{signature}",
    response_model=TransactionStatus,
    responses={
        **ERRORS,
        **on(
            200,
            GetRequest=to(REQUEST, "get", "The request the attempt is for.",
                          request_id="$response.body#/request_id"),
            GetTicketChain=to(TICKET_CHAIN, "get", "The ticket on chain.",
                              ticket_id="$response.body#/ticket_id"),
        ),
    },
    summary="One signed transaction attempt by its signature",
)
async def transaction_status(
    signature: Signature, principal: Caller, context: Context
) -> TransactionStatus:
    async with tenant_transaction(context.pool, principal.tenant_id, source="api") as conn:
        row = await transactions.attempt_by_signature(conn, signature)
    if row is None:
        raise Hidden("pending_transactions", signature)
    return TransactionStatus.of_row(row)
