"""Queries for the reconcile commands: per-tenant reads, the tenant list, holder-drift writes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from chainworker.db.live_transactions import LiveAttempt, PoisonRow, decode_live
from chainworker.db.pool import Connection


@dataclass(frozen=True, slots=True)
class MintedTicket:
    tenant_id: UUID
    ticket_id: UUID
    token_mint: str
    status: str
    user_id: UUID | None
    wallet_address: str | None
    registered_wallet: str | None
    verified: bool = False  # a verify confirmed: the mint is a member of its event's group
    group_mint: str | None = None  # the event's confirmed group


@dataclass(frozen=True, slots=True)
class Located:
    tenant_id: UUID
    request_id: UUID | None
    tx_id: UUID | None


async def tenant_ids(conn: Connection, after: UUID | None, limit: int) -> list[UUID]:
    """Tenants with chain requests or live transactions after `after`, in id order.

    The one cross-tenant read of the reconcile commands: everything else they read under
    each tenant's own context.
    """
    rows = await conn.fetch("SELECT tenant_id FROM chainworker_tenant_ids($1, $2)", after, limit)
    return [row["tenant_id"] for row in rows]


async def live_transactions(
    conn: Connection,
    older_than_seconds: float,
    op: str | None,
    limit: int,
    after_submitted: datetime | None,
    after_id: UUID | None,
) -> list[LiveAttempt | PoisonRow]:
    """One keyset page of the current tenant's live attempts older than the threshold.

    Oldest first (submitted_at, id). The signed transaction is left out (`serialized_tx`
    is empty): reconcile never rebroadcasts, and 100,000 rows of it would dominate the scan.
    """
    rows = await conn.fetch(
        """SELECT p.id, p.tenant_id, p.ticket_id, p.request_id, p.tx_type, p.tx_signature,
                  p.status, p.attempt, p.last_valid_block_height, p.submitted_at,
                  p.last_sent_at, p.last_rebroadcast_at, p.expiry_check_pending
             FROM pending_transactions p
            WHERE p.tenant_id = current_tenant_id()
              AND p.status IN ('pending', 'confirming')
              AND p.submitted_at <= now() - make_interval(secs => $1)
              AND ($2::text IS NULL OR p.tx_type = $2)
              AND ($4::uuid IS NULL OR (p.submitted_at, p.id) > ($5::timestamptz, $4::uuid))
            ORDER BY p.submitted_at, p.id
            LIMIT $3""",
        older_than_seconds,
        op,
        limit,
        after_id,
        after_submitted,
    )
    return [decode_live(row, to_settle=False) for row in rows]


def page_end(page: list[LiveAttempt | PoisonRow]) -> tuple[datetime, UUID]:
    """The keyset position after a page (its last row's submitted_at and id)."""
    return page[-1].submitted_at, page[-1].id


async def minted_tickets(conn: Connection, limit: int, after: UUID | None) -> list[MintedTicket]:
    """One keyset page of the current tenant's minted tickets, by ticket id, with the
    holder's registered wallet when the user has one, whether the ticket was verified and
    its event's group."""
    rows = await conn.fetch(
        """SELECT t.tenant_id, t.id AS ticket_id, t.token_mint, t.status, t.user_id,
                  t.wallet_address, w.address AS registered_wallet,
                  EXISTS (SELECT 1 FROM chain_requests r
                           WHERE r.tenant_id = t.tenant_id AND r.ticket_id = t.id
                             AND r.operation = 'verify' AND r.status = 'confirmed')
                      AS verified,
                  g.group_mint
             FROM tickets t
             LEFT JOIN wallets w ON w.tenant_id = t.tenant_id AND w.user_id = t.user_id
             LEFT JOIN chainworker_event_groups g
                    ON g.tenant_id = t.tenant_id AND g.event_id = t.event_id
                   AND g.status = 'confirmed'
            WHERE t.tenant_id = current_tenant_id()
              AND t.token_mint IS NOT NULL
              AND t.deleted_at IS NULL
              AND ($2::uuid IS NULL OR t.id > $2)
            ORDER BY t.id
            LIMIT $1""",
        limit,
        after,
    )
    return [MintedTicket(**dict(row)) for row in rows]


async def locate_request(
    conn: Connection, request_id: UUID | None, signature: str | None
) -> Located | None:
    """The tenant (and request, attempt) a request id or a signature belongs to."""
    row = await conn.fetchrow(
        "SELECT * FROM chainworker_locate_request($1, $2)", request_id, signature
    )
    return Located(row["tenant_id"], row["request_id"], row["tx_id"]) if row else None


async def record_holder(
    conn: Connection,
    ticket_id: UUID,
    user_id: UUID | None,
    wallet_address: str,
    token_mint: str,
    expected_user_id: UUID | None,
) -> bool:
    """Set the ticket's holder to the chain's, if it still has that mint and user; changed?"""
    result = await conn.execute(
        """UPDATE tickets SET user_id = $2, wallet_address = $3, updated_at = now()
            WHERE id = $1 AND token_mint = $4 AND user_id IS NOT DISTINCT FROM $5""",
        ticket_id,
        user_id,
        wallet_address,
        token_mint,
        expected_user_id,
    )
    return result.endswith(" 1")


async def attempt_statuses(conn: Connection, tx_ids: list[UUID]) -> dict[UUID, str]:
    """The current status of each attempt the tenant's context sees, by id."""
    rows = await conn.fetch(
        "SELECT id, status FROM pending_transactions WHERE id = ANY($1::uuid[])", tx_ids
    )
    return {row["id"]: row["status"] for row in rows}


async def tenant_user_ids(conn: Connection, tenant_id: UUID) -> list[UUID]:
    """Every user of the tenant."""
    rows = await conn.fetch("SELECT id FROM users WHERE tenant_id = $1", tenant_id)
    return [row["id"] for row in rows]


async def registered_wallets(conn: Connection) -> dict[UUID, str]:
    """Every registered external wallet the current tenant's context sees, by user."""
    rows = await conn.fetch("SELECT user_id, address FROM wallets")
    return {row["user_id"]: row["address"] for row in rows}


async def log_ticket_abandoned(
    conn: Connection,
    ticket_id: UUID,
    status: str,
    reason: str,
    source: str,
    request_id: UUID,
    operation: str,
) -> None:
    """A ticket history row for an abandoned request (the status itself does not change)."""
    await conn.execute(
        """SELECT log_ticket_status_change_manual(
               $1, $2, $2, $3, $4, NULL, 'admin',
               jsonb_build_object('request_id', $5::text, 'operation', $6::text,
                                  'action', 'abandon'))""",
        ticket_id,
        status,
        reason,
        source,
        str(request_id),
        operation,
    )
