"""Apply an outcome in the same transaction as the status change that caused it.

Ticket status and mint, transfer completion, history (through the trigger, with the
session variables set by the tenant transaction), blockchain_sync_log, an outbox
event for the ticket service, the tenant's spending, and the request's final status.
"""

from __future__ import annotations

from typing import Any

from solders.pubkey import Pubkey

from chainworker.db import audit, requests, tickets, transactions
from chainworker.db.pool import Connection
from chainworker.db.requests import RequestRow
from chainworker.db.transactions import LiveAttempt
from chainworker.jobs.context import WorkerContext
from chainworker.jobs.prepare import holder_of
from chainworker.lifecycle import ticket_rules
from chainworker.lifecycle.model import TxOp
from chainworker.ops import metrics

EVENT_FOR_OP = {"mint": "ticket.minted", "transfer": "ticket.transferred", "burn": "ticket.burned"}
CHAIN_FAILED_EVENT = "ticket.chain_failed"


def _payload(request: RequestRow, **extra: Any) -> dict[str, Any]:
    return {
        "request_id": str(request.id),
        "ticket_id": str(request.ticket_id),
        "operation": request.operation,
        **{key: value for key, value in extra.items() if value is not None},
    }


async def refuse(conn: Connection, request: RequestRow, code: str, message: str) -> None:
    """The request cannot be carried out: record why; the ticket stays as it is."""
    if code == ticket_rules.RefusalCode.SPEND_LIMIT:
        metrics.SPEND_LIMIT_REFUSALS.inc()
    await requests.settle(conn, request.id, "refused", code=code, message=message)
    await audit.log_sync(
        conn, request.tenant_id, entity_type="chain_request", entity_id=request.id,
        ticket_id=request.ticket_id, operation=request.operation, status="skipped",
        details={"outcome": "refused", "code": code}, error=message,
    )
    await audit.emit_event(
        conn, request.tenant_id, aggregate_type="ticket", aggregate_id=request.ticket_id,
        event_type=CHAIN_FAILED_EVENT, payload=_payload(request, code=code, message=message),
    )


async def confirmed(
    ctx: WorkerContext,
    conn: Connection,
    attempt: LiveAttempt,
    request: RequestRow,
    slot: int,
    *,
    adopted: bool = False,
) -> str | None:
    """The attempt landed at the target commitment. Returns the token mint it concerns."""
    ticket = await tickets.lock_ticket(conn, request.ticket_id)
    op = TxOp(request.operation)
    token_mint: str | None = None
    if ticket is not None:
        new_status = ticket_rules.ticket_status_on_confirm(
            op, ticket.status, burn_reason=request.reason
        )
        if op is TxOp.MINT:
            token_mint = str(ctx.mint_key(request.tenant_id, ticket.id).pubkey())
            holder = await holder_of(ctx, conn, request.tenant_id, ticket.user_id) if (
                ticket.user_id
            ) else Pubkey.default()
            await tickets.set_minted(
                conn, ticket.id, token_mint, str(holder), new_status.value if new_status else None
            )
        elif op is TxOp.TRANSFER and request.transfer_id is not None:
            token_mint = ticket.token_mint
            transfer = await tickets.lock_transfer(conn, request.transfer_id)
            if transfer is not None and transfer.to_user_id is not None:
                holder = await holder_of(ctx, conn, request.tenant_id, transfer.to_user_id)
                await tickets.set_holder(
                    conn, ticket.id, transfer.to_user_id, str(holder),
                    new_status.value if new_status else None,
                )
                await tickets.complete_transfer(conn, transfer.id, attempt.tx_signature)
        else:
            token_mint = ticket.token_mint
            if new_status is not None:
                await tickets.set_status(conn, ticket.id, new_status.value)
    await requests.settle(
        conn, request.id, "confirmed", code="adopted" if adopted else None,
        token_mint=token_mint, signature=attempt.tx_signature,
    )
    await audit.emit_event(
        conn, request.tenant_id, aggregate_type="ticket", aggregate_id=request.ticket_id,
        event_type=EVENT_FOR_OP[request.operation],
        payload=_payload(
            request, token_mint=token_mint, signature=attempt.tx_signature, slot=slot,
            reason=request.reason, adopted=adopted or None,
        ),
    )
    return token_mint


async def failed(
    conn: Connection, request: RequestRow, signature: str, code: str, message: str
) -> None:
    """The attempt executed with an error: final for the request; the ticket stays."""
    await requests.settle(
        conn, request.id, "failed", code=code, message=message, signature=signature
    )
    await audit.emit_event(
        conn, request.tenant_id, aggregate_type="ticket", aggregate_id=request.ticket_id,
        event_type=CHAIN_FAILED_EVENT,
        payload=_payload(request, signature=signature, code=code, message=message),
    )


async def expired(conn: Connection, attempt: LiveAttempt, request: RequestRow) -> None:
    """No attempts remain and the last one certainly cannot land."""
    await transactions.finish(conn, attempt.id, "expired")
    message = f"expired after {attempt.attempt} attempt(s)"
    await requests.settle(
        conn, request.id, "expired", code="expired", message=message,
        signature=attempt.tx_signature,
    )
    await audit.log_sync(
        conn, request.tenant_id, entity_type="pending_transaction", entity_id=attempt.id,
        ticket_id=request.ticket_id, operation=request.operation, status="expired",
        signature=attempt.tx_signature, details={"attempt": attempt.attempt},
    )
    await audit.emit_event(
        conn, request.tenant_id, aggregate_type="ticket", aggregate_id=request.ticket_id,
        event_type=CHAIN_FAILED_EVENT,
        payload=_payload(request, signature=attempt.tx_signature, code="expired",
                         message=message),
    )
