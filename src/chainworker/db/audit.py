"""Queries on the records an outcome leaves: blockchain_sync_log, outbox, spending."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from chainworker.db.pool import Connection


async def log_sync(
    conn: Connection,
    tenant_id: UUID,
    *,
    entity_type: str,
    entity_id: UUID | None,
    operation: str,
    status: str,
    ticket_id: UUID | None = None,
    signature: str | None = None,
    details: dict[str, Any] | None = None,
    error: str | None = None,
) -> None:
    """One row of blockchain_sync_log (confirm/fail write theirs inside the seed functions)."""
    await conn.execute(
        """INSERT INTO blockchain_sync_log (tenant_id, entity_type, entity_id, ticket_id,
                                            operation, tx_signature, status, details,
                                            error_message)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb, $9)""",
        tenant_id,
        entity_type,
        entity_id,
        ticket_id,
        operation,
        signature,
        status,
        json.dumps(details or {}, default=str),
        error,
    )


@dataclass(frozen=True, slots=True)
class Event:
    """An outbox event for the ticket service."""

    aggregate_type: str
    aggregate_id: UUID
    event_type: str
    payload: dict[str, Any]


async def emit_events(conn: Connection, tenant_id: UUID, events: Sequence[Event]) -> None:
    """Outbox events, in the same transaction as the change they describe.

    One statement for them all, ids in the order given: a statement per event paid
    PostgreSQL's per-statement setup (constraints, triggers, RLS) once per event.
    """
    if not events:
        return
    await conn.execute(
        """INSERT INTO outbox (tenant_id, aggregate_type, aggregate_id, event_type, payload)
           SELECT $1, e.aggregate_type, e.aggregate_id, e.event_type, e.payload
             FROM unnest($2::text[], $3::uuid[], $4::text[], $5::jsonb[]) WITH ORDINALITY
                  AS e(aggregate_type, aggregate_id, event_type, payload, n)
            ORDER BY e.n""",
        tenant_id,
        [e.aggregate_type for e in events],
        [e.aggregate_id for e in events],
        [e.event_type for e in events],
        [json.dumps(e.payload, default=str) for e in events],
    )


async def has_spend_limit(conn: Connection) -> bool:
    """Whether the current tenant has an active chain spending limit."""
    return bool(await conn.fetchval(
        """SELECT EXISTS (SELECT 1 FROM spending_limits
                           WHERE user_id IS NULL AND currency = 'LAM' AND is_active)"""
    ))


async def reserve_spend(conn: Connection, amounts: list[int]) -> list[str | None]:
    """Weigh amounts (lamports) in order against the tenant's limits, reserving those that fit.

    Each is weighed with what the tenant spent this day, week and month, what is in flight
    and the amounts before it that fit; the reason it would pass a limit, or None when it
    fits and is now reserved. Concurrent callers of one tenant wait for each other until
    the caller's transaction ends, so record the attempts that fit (with what each reserved,
    `NewAttempt.spend_reserved`) in the same transaction and commit soon.
    """
    reasons = await conn.fetchval("SELECT chainworker_spend_reserve($1::bigint[])", amounts)
    return [str(reason) if reason is not None else None for reason in reasons]


async def charged_lamports(conn: Connection, tx_ids: list[UUID]) -> int:
    """What this transaction charged the tenant for these attempts as they settled.

    The charges are written by a trigger when an attempt's status changes; they carry the
    transaction's start time, which finds them through the tenant's spending index.
    """
    total = await conn.fetchval(
        """SELECT coalesce(sum(amount), 0) FROM spending_transactions
            WHERE tenant_id = current_tenant_id() AND user_id IS NULL AND created_at = now()
              AND currency = 'LAM' AND reference_type = 'pending_transaction'
              AND reference_id = ANY($1::uuid[])""",
        tx_ids,
    )
    return int(total or 0)


# The credit a confirmed burn leaves: `spending_transactions.reference_type` of its row.
RENT_RECLAIMED = "rent_reclaimed"


async def credit_reclaimed_rent(conn: Connection, signatures: list[str]) -> int:
    """Credit the tenant with the rent the landed attempts (by signature) gave back: one row
    per attempt with `metadata.rent_reclaimed`, a negative LAM amount with no user,
    referencing the attempt; the lamports credited.

    Like any tenant-wide LAM row it moves the day, week and month totals (migration 109's
    trigger), here down: rent reclaimed this period is that much less spent in it, even
    when its mint was paid for in an earlier one. An attempt credited already is not
    credited again.
    """
    if not signatures:
        return 0
    credited = await conn.fetchval(
        """WITH credited AS (
               INSERT INTO spending_transactions (tenant_id, user_id, amount, currency,
                                                  reference_type, reference_id, created_at)
               SELECT p.tenant_id, NULL, -(p.metadata->>'rent_reclaimed')::numeric, 'LAM',
                      $2, p.id, now()
                 FROM pending_transactions p
                WHERE p.tenant_id = current_tenant_id() AND p.tx_signature = ANY($1::text[])
                  AND jsonb_typeof(p.metadata->'rent_reclaimed') = 'number'
                  AND (p.metadata->>'rent_reclaimed')::numeric BETWEEN 1 AND 1e15
                  AND NOT EXISTS (
                      SELECT 1 FROM spending_transactions s
                       WHERE s.tenant_id = p.tenant_id AND s.reference_type = $2
                         AND s.reference_id = p.id)
               RETURNING amount)
           SELECT coalesce(-sum(amount), 0) FROM credited""",
        signatures,
        RENT_RECLAIMED,
    )
    return int(credited)


async def reclaimed_lamports(conn: Connection, ticket_id: UUID) -> int:
    """The rent credited for the ticket's confirmed burns (`credit_reclaimed_rent`)."""
    total = await conn.fetchval(
        """SELECT coalesce(-sum(s.amount), 0)
             FROM pending_transactions p
             JOIN spending_transactions s
               ON s.tenant_id = p.tenant_id AND s.reference_type = $2 AND s.reference_id = p.id
            WHERE p.tenant_id = current_tenant_id() AND p.ticket_id = $1
              AND p.tx_type = 'burn'""",
        ticket_id,
        RENT_RECLAIMED,
    )
    return int(total)
