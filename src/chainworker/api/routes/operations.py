"""POST mint / transfer execute / burn: check the ticket, record the request, queue it.

The request is recorded, and the idempotent response stored, in one transaction; the
Arq job is enqueued after commit. Should Redis refuse, the request is still recorded
and the workers' sweeper enqueues it: nothing accepted is lost.
"""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from redis.exceptions import RedisError

from chainworker.api.auth import Caller
from chainworker.api.context import ApiContext, get_context
from chainworker.api.idempotency import Claim, IdempotencyKey, fingerprint, run_once
from chainworker.api.isolation import Hidden
from chainworker.api.problems import Problem, documented
from chainworker.api.schemas import Accepted, BurnBody
from chainworker.api.tokens import Principal
from chainworker.db import requests, tickets
from chainworker.db.pool import tenant_transaction
from chainworker.db.requests import NewRequest, Operation
from chainworker.jobs.enqueue import enqueue_jobs
from chainworker.lifecycle import ticket_rules
from chainworker.ops import logs

router = APIRouter(prefix="/v1", tags=["operations"])
Context = Annotated[ApiContext, Depends(get_context)]
ERRORS = documented(400, 401, 404, 409, 422, 503)

log = logs.get_logger(__name__)


def status_url(request_id: UUID) -> str:
    return f"/v1/requests/{request_id}"


async def record_one(
    context: ApiContext,
    principal: Principal,
    claim: Claim,
    operation: Operation,
    *,
    ticket_id: UUID | None = None,
    transfer_id: UUID | None = None,
    reason: str | None = None,
) -> Response:
    tenant_id = principal.tenant_id
    async with tenant_transaction(
        context.pool, tenant_id, reason=f"{operation} requested", source="api"
    ) as conn:
        transfer_status = None
        if transfer_id is not None:
            transfer = await tickets.lock_transfer(conn, transfer_id)
            if transfer is None:
                raise Hidden("ticket_transfers", str(transfer_id))
            ticket_id, transfer_status = transfer.ticket_id, transfer.status
        assert ticket_id is not None
        ticket = await tickets.get_ticket(conn, ticket_id)
        if ticket is None:
            raise Hidden("tickets", str(ticket_id))
        verdict = ticket_rules.check_operation(
            operation,
            ticket.status,
            token_mint=ticket.token_mint,
            transfer_status=transfer_status,
            burn_reason=reason,
        )
        if isinstance(verdict, ticket_rules.Refusal):
            raise Problem("conflict", verdict.message, code=str(verdict.code))
        item = NewRequest(ticket_id, operation, transfer_id=transfer_id, reason=reason)
        [recorded] = await requests.record_requests(conn, tenant_id, operation, [item], "api")
        status = "queued"
        if not recorded.created:
            live = await requests.get_request(conn, recorded.request_id)
            status = live.status if live is not None else status
        body = Accepted(
            request_id=recorded.request_id,
            ticket_id=ticket_id,
            operation=operation,
            status=status,
            created=recorded.created,
            status_url=status_url(recorded.request_id),
        ).model_dump(mode="json")
        await claim.complete(conn, 202, body)
    if recorded.created:
        try:
            await enqueue_jobs(
                context.arq,
                context.settings.queue_name,
                [(recorded.request_id, tenant_id, operation)],
            )
        except (RedisError, OSError) as error:
            log.warning(
                "enqueue failed; the sweeper will queue it",
                error=repr(error),
                request_id=str(recorded.request_id),
            )
    return JSONResponse(body, status_code=202, headers={"Location": body["status_url"]})


@router.post(
    "/tickets/{ticket_id}/mint",
    status_code=202,
    response_model=Accepted,
    responses=ERRORS,
    summary="Mint the ticket's NFT",
)
async def mint(
    ticket_id: UUID, request: Request, principal: Caller, key: IdempotencyKey, context: Context
) -> Response:
    return await run_once(
        context,
        principal,
        key,
        "POST /v1/tickets/{ticket_id}/mint",
        fingerprint("POST", request.url.path, None),
        lambda claim: record_one(context, principal, claim, "mint", ticket_id=ticket_id),
    )


@router.post(
    "/transfers/{transfer_id}/execute",
    status_code=202,
    response_model=Accepted,
    responses=ERRORS,
    summary="Move the NFT of an accepted transfer to its new holder",
)
async def execute_transfer(
    transfer_id: UUID, request: Request, principal: Caller, key: IdempotencyKey, context: Context
) -> Response:
    return await run_once(
        context,
        principal,
        key,
        "POST /v1/transfers/{transfer_id}/execute",
        fingerprint("POST", request.url.path, None),
        lambda claim: record_one(context, principal, claim, "transfer", transfer_id=transfer_id),
    )


@router.post(
    "/tickets/{ticket_id}/burn",
    status_code=202,
    response_model=Accepted,
    responses=ERRORS,
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
    return await run_once(
        context,
        principal,
        key,
        "POST /v1/tickets/{ticket_id}/burn",
        fingerprint("POST", request.url.path, body.model_dump(mode="json")),
        lambda claim: record_one(
            context, principal, claim, "burn", ticket_id=ticket_id, reason=body.reason
        ),
    )
