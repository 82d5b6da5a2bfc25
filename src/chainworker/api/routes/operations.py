"""POST mint / transfer execute / burn / metadata: check the ticket, record the request, queue it.

One statement does the database part (`chainworker_api_request`, migration 103): it
takes the Idempotency-Key, checks the transfer and the ticket, records the request and
stores the 202 body, all in one transaction, so the response is stored exactly when the
request is recorded. The Arq job is enqueued after commit. Should Redis refuse, the
request is still recorded and the workers' sweeper enqueues it: nothing accepted is lost.
"""

from __future__ import annotations

from functools import cache
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from chainworker.api import idempotency
from chainworker.api.auth import Caller
from chainworker.api.context import ApiContext, get_context
from chainworker.api.idempotency import IdempotencyKey, fingerprint
from chainworker.api.isolation import Hidden
from chainworker.api.links import request_links
from chainworker.api.problems import Problem, documented
from chainworker.api.schemas import Accepted, BurnBody, MetadataBody
from chainworker.api.tokens import Principal
from chainworker.db import api_requests
from chainworker.db.api_requests import ApiRequest
from chainworker.jobs.enqueue import enqueue_committed
from chainworker.lifecycle import ticket_rules
from chainworker.lifecycle.metadata import MetadataChange
from chainworker.lifecycle.model import RequestStatus, TxOp
from chainworker.lifecycle.ticket_rules import TicketStatus, TransferStatus

router = APIRouter(prefix="/v1", tags=["operations"])
Context = Annotated[ApiContext, Depends(get_context)]
ERRORS = documented(400, 401, 404, 409, 422, 503)
RESPONSES = {**ERRORS, **request_links(202)}
STATUS_URL_PREFIX = "/v1/requests/"


def status_url(request_id: UUID) -> str:
    return f"{STATUS_URL_PREFIX}{request_id}"


def state_key(ticket_status: str, token_mint: str | None, transfer_status: str | None) -> str:
    """How `chainworker_api_request` names a ticket's state (see `allowed_states`)."""
    minted = "unminted" if token_mint is None else "minted"
    return f"{ticket_status}|{minted}|{transfer_status or ''}"


@cache
def allowed_states(operation: TxOp, reason: str | None) -> tuple[str, ...]:
    """Every state in which ticket_rules allow the operation, for the database to check.

    The rules look at the ticket's status, whether it has a mint, and the transfer's
    status; enumerating them here keeps ticket_rules the one place that decides.
    """
    # Only a transfer execute reads a transfer row; for the others its status is None.
    transfers = (None, *TransferStatus) if operation == "transfer" else (None,)
    allowed: list[str] = []
    for status in TicketStatus:
        for mint in (None, "minted"):
            for transfer in transfers:
                verdict = ticket_rules.check_operation(
                    operation,
                    status,
                    token_mint=mint,
                    transfer_status=transfer,
                    burn_reason=reason,
                )
                if isinstance(verdict, ticket_rules.Allowed):
                    allowed.append(state_key(status, mint, transfer))
    return tuple(allowed)


async def record_one(
    context: ApiContext,
    principal: Principal,
    key: str,
    route: str,
    request_hash: str,
    operation: TxOp,
    *,
    ticket_id: UUID | None = None,
    transfer_id: UUID | None = None,
    reason: str | None = None,
    changes: MetadataChange | None = None,
) -> Response:
    """Record the request (or replay / refuse by its Idempotency-Key), then queue it."""
    ask = ApiRequest(
        tenant_id=principal.tenant_id,
        key=key,
        route=route,
        request_hash=request_hash,
        locked_by=str(principal.token_id),
        lock_seconds=idempotency.LOCK_SECONDS,
        ttl_seconds=idempotency.REMEMBER_SECONDS,
        operation=operation,
        ticket_id=ticket_id,
        transfer_id=transfer_id,
        reason=reason,
        allowed=allowed_states(operation, reason),
        status_url_prefix=STATUS_URL_PREFIX,
        changes=changes,
    )
    async with context.pool.acquire() as conn:
        done = await api_requests.record_api_request(conn, ask)
    if done.outcome == "recorded":
        assert done.request_id is not None and done.response_body is not None
        if done.created:
            await _enqueue(context, done.request_id, principal.tenant_id, operation)
        return Response(
            done.response_body,
            status_code=202,
            media_type="application/json",
            headers={"Location": status_url(done.request_id)},
        )
    if done.outcome == "cached":
        assert done.response_status is not None and done.response_body is not None
        return idempotency.replay(done.response_status, done.response_body)
    if done.outcome == "not_found":
        assert done.missing is not None
        missing_key = transfer_id if done.missing == "ticket_transfers" else ticket_id
        raise Hidden(done.missing, str(missing_key))
    if done.outcome == RequestStatus.REFUSED:
        assert done.ticket_status is not None
        verdict = ticket_rules.check_operation(
            operation,
            done.ticket_status,
            token_mint=done.token_mint,
            transfer_status=done.transfer_status,
            burn_reason=reason,
        )
        if not isinstance(verdict, ticket_rules.Refusal):
            raise RuntimeError(f"{operation} refused in a state the rules allow: {verdict}")
        raise Problem("conflict", verdict.message, code=str(verdict.code))
    raise idempotency.refusal(done.outcome)


async def _enqueue(
    context: ApiContext, request_id: UUID, tenant_id: UUID, operation: TxOp
) -> None:
    await enqueue_committed(
        context.arq, context.settings.queue_name, [(request_id, tenant_id, operation)]
    )


@router.post(
    "/tickets/{ticket_id}/mint",
    status_code=202,
    response_model=Accepted,
    responses=RESPONSES,
    summary="Mint the ticket's NFT",
)
async def mint(
    ticket_id: UUID, request: Request, principal: Caller, key: IdempotencyKey, context: Context
) -> Response:
    return await record_one(
        context,
        principal,
        key,
        "POST /v1/tickets/{ticket_id}/mint",
        fingerprint("POST", request.url.path, None),
        TxOp.MINT,
        ticket_id=ticket_id,
    )


@router.post(
    "/transfers/{transfer_id}/execute",
    status_code=202,
    response_model=Accepted,
    responses=RESPONSES,
    summary="Move the NFT of an accepted transfer to its new holder",
)
async def execute_transfer(
    transfer_id: UUID, request: Request, principal: Caller, key: IdempotencyKey, context: Context
) -> Response:
    return await record_one(
        context,
        principal,
        key,
        "POST /v1/transfers/{transfer_id}/execute",
        fingerprint("POST", request.url.path, None),
        TxOp.TRANSFER,
        transfer_id=transfer_id,
    )


@router.post(
    "/tickets/{ticket_id}/burn",
    status_code=202,
    response_model=Accepted,
    responses=RESPONSES,
    summary="Burn the ticket's NFT (revoke or refund)",
)
async def burn(
    ticket_id: UUID,
    body: BurnBody,
    request: Request,
    principal: Caller,
    key: IdempotencyKey,
    context: Context,
) -> Response:
    return await record_one(
        context,
        principal,
        key,
        "POST /v1/tickets/{ticket_id}/burn",
        fingerprint("POST", request.url.path, body.model_dump(mode="json")),
        TxOp.BURN,
        ticket_id=ticket_id,
        reason=body.reason,
    )


@router.post(
    "/tickets/{ticket_id}/metadata",
    status_code=202,
    response_model=Accepted,
    responses=RESPONSES,
    summary="Update the NFT's metadata: fields to set, custom keys to remove",
)
async def update_metadata(
    ticket_id: UUID,
    body: MetadataBody,
    request: Request,
    principal: Caller,
    key: IdempotencyKey,
    context: Context,
) -> Response:
    # Every call with a new key is an update of its own (several run in order); a retry
    # with the same key and body is replayed.
    return await record_one(
        context,
        principal,
        key,
        "POST /v1/tickets/{ticket_id}/metadata",
        fingerprint("POST", request.url.path, body.model_dump(mode="json")),
        TxOp.METADATA_UPDATE,
        ticket_id=ticket_id,
        changes=body.change(),
    )
