"""Event-wide revocation through the shared multisig tables.

An admin asks (`POST /v1/events/{event_id}/revocations`): a
`multisig_approval_requests` row needing `required_approvals` distinct admins.
Admins approve or reject. The approval that reaches the threshold executes it in the
same transaction: one recorded burn request per minted ticket of the event, then the
row becomes `executed`; the jobs are enqueued after commit. An admin's second
approval counts once. A request past its `expires_at` becomes `expired` when next
touched, and takes no more votes.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response

from chainworker.api.auth import Admin, Caller
from chainworker.api.context import ApiContext, get_context
from chainworker.api.idempotency import Claim, IdempotencyKey, fingerprint, run_once
from chainworker.api.isolation import Hidden
from chainworker.api.links import revocation_links
from chainworker.api.problems import Problem, documented
from chainworker.api.schemas import Revocation, RevocationBody, VoteBody
from chainworker.api.tokens import Principal
from chainworker.db import multisig, requests, tickets
from chainworker.db.multisig import ApprovalRequestRow
from chainworker.db.pool import Connection, tenant_transaction
from chainworker.db.requests import NewRequest
from chainworker.jobs.enqueue import enqueue_committed
from chainworker.lifecycle.model import TxOp
from chainworker.obs import logs

router = APIRouter(prefix="/v1/events/{event_id}/revocations", tags=["revocations"])
Context = Annotated[ApiContext, Depends(get_context)]
OPERATION_TYPE = "event_revocation"
# Tickets whose NFT exists and may be burned (ticket_rules: minted, active, transferred).
BURNABLE_STATUSES = ["minted", "active", "transferred"]

log = logs.get_logger(__name__)


def _admin_tx(
    context: ApiContext, principal: Principal, reason: str
) -> AbstractAsyncContextManager[Connection]:
    return tenant_transaction(
        context.pool,
        principal.tenant_id,
        actor_type="admin",
        reason=reason,
        source="multisig",
        user_id=principal.user_id,
    )


async def _view(conn: Connection, row: ApprovalRequestRow) -> Revocation:
    payload = row.payload
    assert row.resource_id is not None
    return Revocation(
        revocation_id=row.id,
        event_id=row.resource_id,
        reason=payload.get("reason", "revoke"),
        status=row.status,
        required_approvals=row.required_approvals,
        current_approvals=row.current_approvals,
        requested_by=row.requested_by,
        approvers=await multisig.approver_ids(conn, row.id),
        expires_at=row.expires_at,
        executed_at=row.executed_at,
        burn_request_ids=[UUID(i) for i in payload.get("burn_request_ids", [])],
    )


async def _lock(conn: Connection, event_id: UUID, revocation_id: UUID) -> ApprovalRequestRow:
    row = await multisig.lock_request(conn, revocation_id, event_id, OPERATION_TYPE)
    if row is None:
        raise Hidden("multisig_approval_requests", str(revocation_id))
    return row


async def _execute(conn: Connection, tenant_id: UUID, row: ApprovalRequestRow) -> list[UUID]:
    """Record a burn per minted ticket of the event and mark the revocation executed."""
    reason = row.payload.get("reason", "revoke")
    assert row.resource_id is not None
    ticket_ids = await tickets.burnable_ticket_ids(conn, row.resource_id, BURNABLE_STATUSES)
    items = [NewRequest(t, TxOp.BURN, reason=reason) for t in ticket_ids]
    recorded = await requests.record_requests(conn, tenant_id, TxOp.BURN, items, "multisig")
    await multisig.mark_executed(conn, row.id, [r.request_id for r in recorded])
    return [r.request_id for r in recorded if r.created]


async def _enqueue_burns(context: ApiContext, tenant_id: UUID, request_ids: list[UUID]) -> None:
    await enqueue_committed(
        context.arq, context.settings.queue_name, [(r, tenant_id, TxOp.BURN) for r in request_ids]
    )


@router.post(
    "",
    status_code=201,
    response_model=Revocation,
    responses={**documented(400, 401, 403, 404, 409, 422, 503), **revocation_links(201)},
    summary="Ask for every minted ticket of the event to be burned (needs admin approvals)",
)
async def create_revocation(
    event_id: UUID,
    body: RevocationBody,
    request: Request,
    principal: Admin,
    key: IdempotencyKey,
    context: Context,
) -> Response:
    async def work(claim: Claim) -> Response:
        async with _admin_tx(context, principal, "event revocation requested") as conn:
            if not await tickets.event_exists(conn, event_id):
                raise Hidden("events", str(event_id))
            live = await multisig.live_request_id(conn, event_id, OPERATION_TYPE)
            if live is not None:
                raise Problem(
                    "conflict",
                    f"revocation {live} of this event is still pending",
                    code="revocation_pending",
                )
            row = await multisig.create_request(
                conn,
                principal.tenant_id,
                operation_type=OPERATION_TYPE,
                resource_type="event",
                resource_id=event_id,
                requested_by=principal.user_id,
                required_approvals=context.settings.revocation_required_approvals,
                payload={"reason": body.reason, "comment": body.comment},
                ttl_seconds=float(context.settings.revocation_ttl_seconds),
            )
            result = (await _view(conn, row)).model_dump(mode="json")
            await claim.complete(conn, 201, result)
        return JSONResponse(result, status_code=201)

    return await run_once(
        context,
        principal,
        key,
        "POST /v1/events/{event_id}/revocations",
        fingerprint("POST", request.url.path, body.model_dump(mode="json")),
        work,
    )


@router.get(
    "/{revocation_id}",
    response_model=Revocation,
    responses={**documented(400, 401, 404, 422, 503), **revocation_links(200)},
    summary="A revocation's state, approvals and the burns it recorded",
)
async def get_revocation(
    event_id: UUID, revocation_id: UUID, principal: Caller, context: Context
) -> Revocation:
    async with tenant_transaction(context.pool, principal.tenant_id, source="api") as conn:
        await multisig.expire_if_due(conn, revocation_id)
        row = await _lock(conn, event_id, revocation_id)
        return await _view(conn, row)


async def _vote(
    context: ApiContext,
    principal: Principal,
    claim: Claim,
    event_id: UUID,
    revocation_id: UUID,
    *,
    approve: bool,
    comment: str | None,
) -> Response:
    async with tenant_transaction(context.pool, principal.tenant_id, source="multisig") as conn:
        await multisig.expire_if_due(conn, revocation_id)  # committed on its own: expiry is a fact
    created: list[UUID] = []
    verb = "approved" if approve else "rejected"
    async with _admin_tx(context, principal, f"event revocation {verb}") as conn:
        row = await _lock(conn, event_id, revocation_id)
        already = await multisig.has_voted(conn, revocation_id, principal.user_id, approve=approve)
        if not already:
            if row.status != "pending":
                raise Problem(
                    "conflict",
                    f"the revocation is {row.status}",
                    code=f"revocation_{row.status}",
                )
            await multisig.record_vote(
                conn,
                principal.tenant_id,
                revocation_id,
                principal.user_id,
                comment,
                approve=approve,
            )
            row = await _lock(conn, event_id, revocation_id)
            if row.status == "approved":
                created = await _execute(conn, principal.tenant_id, row)
                row = await _lock(conn, event_id, revocation_id)
        result = (await _view(conn, row)).model_dump(mode="json")
        await claim.complete(conn, 200, result)
    await _enqueue_burns(context, principal.tenant_id, created)
    return JSONResponse(result, status_code=200)


@router.post(
    "/{revocation_id}/approvals",
    response_model=Revocation,
    responses={**documented(400, 401, 403, 404, 409, 422, 503), **revocation_links(200)},
    summary="Approve; the approval reaching the threshold executes the revocation",
)
async def approve(
    event_id: UUID,
    revocation_id: UUID,
    body: VoteBody,
    request: Request,
    principal: Admin,
    key: IdempotencyKey,
    context: Context,
) -> Response:
    return await run_once(
        context,
        principal,
        key,
        "POST /v1/events/{event_id}/revocations/{revocation_id}/approvals",
        fingerprint("POST", request.url.path, body.model_dump(mode="json")),
        lambda claim: _vote(
            context, principal, claim, event_id, revocation_id, approve=True, comment=body.comment
        ),
    )


@router.post(
    "/{revocation_id}/rejections",
    response_model=Revocation,
    responses={**documented(400, 401, 403, 404, 409, 422, 503), **revocation_links(200)},
    summary="Reject; one rejection ends the revocation",
)
async def reject(
    event_id: UUID,
    revocation_id: UUID,
    body: VoteBody,
    request: Request,
    principal: Admin,
    key: IdempotencyKey,
    context: Context,
) -> Response:
    return await run_once(
        context,
        principal,
        key,
        "POST /v1/events/{event_id}/revocations/{revocation_id}/rejections",
        fingerprint("POST", request.url.path, body.model_dump(mode="json")),
        lambda claim: _vote(
            context, principal, claim, event_id, revocation_id, approve=False, comment=body.comment
        ),
    )
