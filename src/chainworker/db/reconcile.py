"""Queries for the reconcile commands: the narrow cross-tenant reads, and holder-drift writes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from chainworker.db.pool import Connection
from chainworker.db.transactions import LiveAttempt


@dataclass(frozen=True, slots=True)
class MintedTicket:
    tenant_id: UUID
    ticket_id: UUID
    token_mint: str
    status: str
    user_id: UUID | None
    wallet_address: str | None
    registered_wallet: str | None


@dataclass(frozen=True, slots=True)
class Located:
    tenant_id: UUID
    request_id: UUID | None
    tx_id: UUID | None


async def live_transactions(
    conn: Connection,
    older_than_seconds: float,
    tenant_id: UUID | None,
    op: str | None,
    limit: int,
    after_submitted: datetime | None,
    after_id: UUID | None,
) -> list[LiveAttempt]:
    """One keyset page of live attempts older than the threshold, oldest first (all tenants).

    The function leaves out the signed transaction: `serialized_tx` is empty.
    """
    rows = await conn.fetch(
        """SELECT * FROM chainworker_live_transactions(
    p_older_than_seconds => $1, p_tenant => $2, p_op => $3, p_limit => $4,
    p_after_submitted => $5, p_after_id => $6)""",
        older_than_seconds,
        tenant_id,
        op,
        limit,
        after_submitted,
        after_id,
    )
    return [LiveAttempt(**dict(row), serialized_tx=b"") for row in rows]


async def minted_tickets(
    conn: Connection, tenant_id: UUID | None, limit: int, after: UUID | None
) -> list[MintedTicket]:
    """One keyset page of minted tickets (of one tenant, or all), by ticket id."""
    rows = await conn.fetch(
        "SELECT * FROM chainworker_minted_tickets(p_tenant => $1, p_limit => $2, p_after => $3)",
        tenant_id,
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
