"""Apply an outcome in the same transaction as the status change that caused it.

Ticket status and mint, transfer completion, history (through the trigger, with the
session variables set by the tenant transaction), blockchain_sync_log, an outbox
event for the ticket service, the request's final status, and the rent a burn's closed
accounts gave back, credited to the tenant. Confirmations come in
batches (one tenant, one transaction): every statement here is one round trip for
the whole batch.

A mint that confirms for an event whose group exists on chain gets its verify request in
the same transaction (unless `auto_verify` is off): the ticket joins its event's
collection right after it is minted. The caller enqueues it after the commit (or the
sweeper does).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from uuid import UUID

from chainworker.db import audit, event_groups, requests, tickets
from chainworker.db.audit import Event
from chainworker.db.live_transactions import LiveAttempt
from chainworker.db.pool import Connection
from chainworker.db.requests import NewRequest, RequestRow, Settlement
from chainworker.lifecycle import ticket_rules
from chainworker.lifecycle.model import RequestStatus, TxOp
from chainworker.lifecycle.outcome import outbox_event_type
from chainworker.obs import metrics
from chainworker.pipeline.context import PipelineContext, QueuedJob

# Who records a new mint's verify request (chain_requests.source).
AUTO_VERIFY_SOURCE = "worker"


@dataclass(frozen=True, slots=True)
class Landed:
    """An attempt that reached the target commitment, with its request."""

    attempt: LiveAttempt
    request: RequestRow
    slot: int
    # The wallet the NFT went to (mint, transfer), recorded when the attempt was signed.
    destination: str | None
    adopted: bool = False  # the request was done by another attempt than this one
    signature: str | None = None  # the attempt that landed, when it is not `attempt`

    @property
    def landed_signature(self) -> str:
        return self.signature or self.attempt.tx_signature


def ended_event(request: RequestRow, ended: RequestStatus, **extra: Any) -> Event:
    """The outbox event that tells the ticket service how the request ended."""
    event_type = outbox_event_type(request.operation, ended)
    assert event_type is not None, ended  # every final status has one
    payload = {
        "request_id": str(request.id),
        "ticket_id": str(request.ticket_id),
        "operation": request.operation,
        **{key: value for key, value in extra.items() if value is not None},
    }
    return Event("ticket", request.ticket_id, event_type, payload)


async def refuse(conn: Connection, request: RequestRow, code: str, message: str) -> None:
    """The request cannot be carried out: record why; the ticket stays as it is."""
    if code == ticket_rules.RefusalCode.SPEND_LIMIT:
        metrics.SPEND_LIMIT_REFUSALS.inc()
    await requests.settle(conn, request.id, RequestStatus.REFUSED, code=code, message=message)
    await audit.log_sync(
        conn, request.tenant_id, entity_type="chain_request", entity_id=request.id,
        ticket_id=request.ticket_id, operation=request.operation, status="skipped",
        details={"outcome": "refused", "code": code}, error=message,
    )
    await audit.emit_events(conn, request.tenant_id, [
        ended_event(request, RequestStatus.REFUSED, code=code, message=message)
    ])


async def confirmed(
    ctx: PipelineContext, conn: Connection, landed: list[Landed]
) -> list[QueuedJob]:
    """Landed attempts of one tenant: tickets, transfers, requests and events, batched.

    Returns the jobs of the verify requests recorded for the new mints, to enqueue after
    the commit.
    """
    if not landed:
        return []
    tenant_id = landed[0].request.tenant_id
    ticket_rows = await tickets.lock_tickets(
        conn, sorted({item.request.ticket_id for item in landed})
    )
    transfers = {
        item.request.transfer_id: await tickets.lock_transfer(conn, item.request.transfer_id)
        for item in landed
        if item.request.transfer_id is not None
    }

    minted: list[tuple[UUID, str, str | None, str | None]] = []
    burned: list[tuple[Any, str]] = []
    burns: list[str] = []  # landed burns' signatures: the rent their closes gave back
    settlements: list[Settlement] = []
    events: list[Event] = []
    for item in landed:
        request, signature = item.request, item.landed_signature
        if request.operation == TxOp.BURN:
            burns.append(signature)  # whatever the ticket says now: the accounts are closed
        ticket = ticket_rows.get(request.ticket_id)
        token_mint = ticket.token_mint if ticket else None
        if ticket is not None:
            op = TxOp(request.operation)
            status = ticket_rules.ticket_status_on_confirm(
                op, ticket.status, burn_reason=request.reason
            )
            new_status = status.value if status else None
            if op is TxOp.MINT:
                token_mint = str(ctx.keys.mint_address(tenant_id, ticket.id))
                minted.append((ticket.id, token_mint, item.destination, new_status))
            elif op is TxOp.TRANSFER:
                transfer = transfers.get(request.transfer_id) if request.transfer_id else None
                if transfer is not None and item.destination is not None:
                    # The seed's trigger hands the ticket over (user, wallet, count, status).
                    await tickets.complete_transfer(
                        conn, transfer.id, signature, item.destination
                    )
            elif new_status is not None:
                burned.append((ticket.id, new_status))
        settlements.append(Settlement(
            request.id, RequestStatus.CONFIRMED, code="adopted" if item.adopted else None,
            token_mint=token_mint, signature=signature,
        ))
        events.append(ended_event(
            request, RequestStatus.CONFIRMED, token_mint=token_mint,
            signature=signature, slot=item.slot, reason=request.reason,
            adopted=item.adopted or None,
            changes=request.changes.as_json() if request.changes is not None else None,
        ))
    if minted:
        await tickets.set_minted_many(conn, minted)
    if burned:
        await tickets.set_status_many(conn, burned)
    await requests.settle_many(conn, settlements)
    await audit.emit_events(conn, tenant_id, events)
    metrics.RENT_RECLAIMED_LAMPORTS.inc(await audit.credit_reclaimed_rent(conn, burns))
    if not minted or not ctx.settings.auto_verify:
        return []
    return await _verify_new_mints(conn, tenant_id, [
        (ticket_id, ticket_rows[ticket_id].event_id) for ticket_id, *_ in minted
    ])


async def _verify_new_mints(
    conn: Connection, tenant_id: UUID, minted: list[tuple[UUID, UUID]]
) -> list[QueuedJob]:
    """Record a verify request for each new mint whose event has a confirmed group."""
    groups = await event_groups.of_events(conn, sorted({event for _, event in minted}))
    wanted = [
        NewRequest(ticket_id, TxOp.VERIFY) for ticket_id, event_id in minted
        if (group := groups.get(event_id)) is not None and group.is_confirmed
    ]
    if not wanted:
        return []
    recorded = await requests.record_requests(
        conn, tenant_id, TxOp.VERIFY, wanted, AUTO_VERIFY_SOURCE
    )
    return [(r.request_id, tenant_id, TxOp.VERIFY) for r in recorded if r.created]


async def failed(
    conn: Connection, request: RequestRow, signature: str, code: str, message: str
) -> None:
    """The attempt executed with an error: final for the request; the ticket stays."""
    await requests.settle(
        conn, request.id, RequestStatus.FAILED, code=code, message=message, signature=signature
    )
    await audit.emit_events(conn, request.tenant_id, [
        ended_event(request, RequestStatus.FAILED, signature=signature, code=code, message=message)
    ])


async def expired(conn: Connection, attempt: LiveAttempt, request: RequestRow) -> None:
    """No attempts remain and the last one certainly cannot land (the attempt itself is
    ended by the caller, as the lifecycle's transition says)."""
    message = f"expired after {attempt.attempt} attempt(s)"
    await requests.settle(
        conn, request.id, RequestStatus.EXPIRED, code="expired", message=message,
        signature=attempt.tx_signature,
    )
    await audit.log_sync(
        conn, request.tenant_id, entity_type="pending_transaction", entity_id=attempt.id,
        ticket_id=request.ticket_id, operation=request.operation, status="expired",
        signature=attempt.tx_signature, details={"attempt": attempt.attempt},
    )
    await audit.emit_events(conn, request.tenant_id, [
        ended_event(request, RequestStatus.EXPIRED, signature=attempt.tx_signature,
                    code="expired", message=message)
    ])
