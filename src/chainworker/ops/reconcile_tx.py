"""Operator actions on one request: show its attempt chain, retry it, abandon it.

An id alone names the request (a request id or one attempt's signature); the tenant is
looked up through one narrow read-only function, and everything after that runs inside
that tenant's context.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import asyncpg
from arq.connections import ArqRedis
from solders.signature import Signature

from chainworker.chain.rpc import SolanaRpc
from chainworker.chain.views import SignatureStatusView
from chainworker.db import audit, live_transactions, requests, tickets, transactions
from chainworker.db import reconcile as db_reconcile
from chainworker.db.errors import TicketBusy
from chainworker.db.pool import tenant_transaction
from chainworker.db.reconcile import Located
from chainworker.db.requests import RequestRow
from chainworker.db.transactions import AttemptRow
from chainworker.jobs.enqueue import enqueue_jobs
from chainworker.lifecycle.model import Commitment, RequestStatus, TxStatus
from chainworker.pipeline.outcomes import ended_event

RETRYABLE_STATUSES = (RequestStatus.FAILED, RequestStatus.EXPIRED)
ABANDONED = RequestStatus.ABANDONED
SOURCE = "reconcile"


class OperatorError(Exception):
    """The action cannot be taken; the message says why. Nothing was changed."""


@dataclass(frozen=True, slots=True)
class Reference:
    """What the operator typed: a request id or a transaction signature."""

    request_id: UUID | None = None
    signature: str | None = None

    @classmethod
    def parse(cls, text: str, *, request_only: bool = False) -> Reference:
        text = text.strip()
        try:
            return cls(request_id=UUID(text))
        except ValueError:
            pass
        if request_only:
            raise OperatorError(f"{text!r} is not a request id (a UUID)")
        try:
            Signature.from_string(text)
        except ValueError:
            raise OperatorError(
                f"{text!r} is neither a request id (UUID) nor a transaction signature"
            ) from None
        return cls(signature=text)

    def __str__(self) -> str:
        return str(self.request_id) if self.request_id else str(self.signature)


@dataclass(frozen=True, slots=True)
class AttemptReport:
    attempt: AttemptRow
    chain: SignatureStatusView | None
    logs: list[str]

    def as_json(self) -> dict[str, Any]:
        row = self.attempt
        return {
            "tx_id": str(row.id),
            "attempt": row.attempt,
            "signature": row.tx_signature,
            "status": row.status,
            "blockhash": row.blockhash,
            "last_valid_block_height": row.last_valid_block_height,
            "slot": row.slot,
            "error_code": row.error_code,
            "error_message": row.error_message,
            "submitted_at": row.submitted_at.isoformat(),
            "confirmed_at": row.confirmed_at.isoformat() if row.confirmed_at else None,
            "chain": None if self.chain is None else {
                "slot": self.chain.slot,
                "confirmation_status": self.chain.confirmation_status,
                "err": self.chain.err.code if self.chain.err else None,
            },
            "logs": self.logs,
        }


@dataclass
class TxReport:
    tenant_id: UUID
    request: RequestRow | None
    attempts: list[AttemptReport] = field(default_factory=list)
    block_height: int | None = None

    def as_json(self) -> dict[str, Any]:
        request = self.request
        return {
            "tenant_id": str(self.tenant_id),
            "block_height": self.block_height,
            "request": None if request is None else {
                "id": str(request.id),
                "ticket_id": str(request.ticket_id),
                "operation": request.operation,
                "status": request.status,
                "attempts": request.attempts,
                "outcome_code": request.outcome_code,
                "outcome_message": request.outcome_message,
                "token_mint": request.token_mint,
                "tx_signature": request.tx_signature,
                "created_at": request.created_at.isoformat(),
                "completed_at": request.completed_at.isoformat() if request.completed_at else None,
            },
            "attempts": [a.as_json() for a in self.attempts],
        }


async def locate(pool: asyncpg.Pool, ref: Reference) -> Located:
    async with pool.acquire() as conn:
        found = await db_reconcile.locate_request(conn, ref.request_id, ref.signature)
    if found is None:
        raise OperatorError(f"no request or transaction {ref}")
    return found


async def show(
    pool: asyncpg.Pool, rpc: SolanaRpc, ref: Reference, *, commitment: Commitment
) -> TxReport:
    """The request, every attempt with its chain status, and the logs of landed ones."""
    where = await locate(pool, ref)
    async with tenant_transaction(pool, where.tenant_id, reason="tx show") as conn:
        request = (
            await requests.get_request(conn, where.request_id) if where.request_id else None
        )
        if request is not None:
            attempts = await transactions.attempts_for_request(conn, request.id)
        else:
            assert ref.signature is not None
            single = await transactions.attempt_by_signature(conn, ref.signature)
            attempts = [single] if single else []
    statuses = await rpc.signature_statuses([a.tx_signature for a in attempts])
    report = TxReport(where.tenant_id, request, block_height=await rpc.block_height(commitment))
    for attempt, status in zip(attempts, statuses, strict=True):
        logs = await rpc.get_transaction_logs(attempt.tx_signature) if status else []
        report.attempts.append(AttemptReport(attempt, status, logs))
    return report


async def retry(
    pool: asyncpg.Pool, arq: ArqRedis, queue_name: str, ref: Reference
) -> RequestRow:
    """A failed or expired request back to queued, audited, and enqueued again."""
    where = await locate(pool, ref)
    if where.request_id is None:
        raise OperatorError(f"{ref} belongs to no request")
    async with tenant_transaction(
        pool, where.tenant_id, actor_type="admin", reason="tx retry", source=SOURCE
    ) as conn:
        request = await requests.get_request(conn, where.request_id, lock=True)
        if request is None:
            raise OperatorError(f"no request {where.request_id}")
        if request.status not in RETRYABLE_STATUSES:
            raise OperatorError(
                f"request {request.id} is {request.status}; only failed or expired requests "
                "can be retried"
            )
        try:
            async with conn.transaction():
                await requests.requeue(conn, request.id)
        except TicketBusy:
            raise OperatorError(
                f"ticket {request.ticket_id} already has a live {request.operation} request"
            ) from None
        await audit.log_sync(
            conn, request.tenant_id, entity_type="chain_request", entity_id=request.id,
            ticket_id=request.ticket_id, operation=request.operation, status="pending",
            details={"action": "retry", "previous_status": request.status,
                     "previous_code": request.outcome_code},
        )
        queued = await requests.get_request(conn, request.id)
    assert queued is not None
    # After the commit, as every enqueue: the sweeper re-enqueues it if this is lost.
    await enqueue_jobs(arq, queue_name, [(queued.id, queued.tenant_id, queued.operation)])
    return queued


async def abandon(
    pool: asyncpg.Pool,
    rpc: SolanaRpc,
    ref: Reference,
    reason: str,
    *,
    commitment: Commitment,
    force: bool = False,
) -> RequestRow:
    """A live request -> abandoned; its live attempt ends as expired. Audited.

    Refused when the live attempt is known to the chain (it landed or may yet confirm:
    `reconcile --apply` settles it), and, without `force`, while its blockhash is still
    valid (it could still land after being abandoned).
    """
    reason = reason.strip()
    if not reason:
        raise OperatorError("a reason is required")
    where = await locate(pool, ref)
    if where.request_id is None:
        raise OperatorError(f"{ref} belongs to no request")
    async with tenant_transaction(pool, where.tenant_id, reason="tx abandon") as conn:
        live = [a for a in await transactions.attempts_for_request(conn, where.request_id)
                if a.status in ("pending", "confirming")]
    if live:
        # One endpoint's view, its height read first (SolanaRpc.read_chain).
        read = await rpc.read_chain([a.tx_signature for a in live], commitment)
        known = [
            a.tx_signature for a, s in zip(live, read.statuses, strict=True) if s is not None
        ]
        if known:
            raise OperatorError(
                f"transaction {known[0]} is known to the chain; settle it with "
                "`chainworker reconcile --apply` instead"
            )
        height = read.height
        valid = [a for a in live if a.last_valid_block_height >= height]
        if valid and not force:
            raise OperatorError(
                f"transaction {valid[0].tx_signature} can still land until block height "
                f"{valid[0].last_valid_block_height} (now {height}); wait, or pass --force"
            )
    async with tenant_transaction(
        pool, where.tenant_id, actor_type="admin", reason=f"abandoned: {reason}", source=SOURCE
    ) as conn:
        request = await requests.get_request(conn, where.request_id, lock=True)
        if request is None or not request.is_live:
            status = request.status if request else "unknown"
            raise OperatorError(f"request {where.request_id} is {status}, not live")
        now_live = {a.id for a in await transactions.attempts_for_request(conn, request.id)
                    if a.status in ("pending", "confirming")}
        if not now_live <= {a.id for a in live}:
            raise OperatorError(
                f"request {request.id} recorded a new attempt meanwhile; run the command again"
            )
        for attempt in live:
            if await live_transactions.lock_live(conn, attempt.id) is not None:
                await live_transactions.finish(conn, attempt.id, TxStatus.EXPIRED)
        await requests.settle(conn, request.id, ABANDONED, code=ABANDONED, message=reason)
        await audit.log_sync(
            conn, request.tenant_id, entity_type="chain_request", entity_id=request.id,
            ticket_id=request.ticket_id, operation=request.operation, status="skipped",
            signature=request.tx_signature,
            details={"action": "abandon", "reason": reason, "forced": force,
                     "attempts_ended": [str(a.id) for a in live]},
            error=f"abandoned: {reason}",
        )
        ticket = await tickets.get_ticket(conn, request.ticket_id)
        if ticket is not None:
            # The ticket's status does not change, so the trigger writes nothing: record
            # the decision in its history explicitly.
            await db_reconcile.log_ticket_abandoned(
                conn, ticket.id, ticket.status, f"{request.operation} abandoned: {reason}",
                SOURCE, request.id, request.operation,
            )
        await audit.emit_events(conn, request.tenant_id, [
            ended_event(request, RequestStatus.ABANDONED, code=ABANDONED, message=reason)
        ])
        done = await requests.get_request(conn, request.id)
    assert done is not None
    return done
