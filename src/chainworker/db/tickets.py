"""Queries on tickets, ticket_transfers, events and wallets: what the worker reads and settles."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from chainworker.db.arrays import columns
from chainworker.db.pool import Connection


@dataclass(frozen=True, slots=True)
class TicketRow:
    id: UUID
    tenant_id: UUID
    event_id: UUID
    user_id: UUID | None
    status: str
    token_mint: str | None
    ticket_number: str | None
    event_name: str | None
    # Where chainworker last sent the NFT (minted or moved there); None before the mint.
    wallet_address: str | None = None


@dataclass(frozen=True, slots=True)
class TransferRow:
    id: UUID
    ticket_id: UUID
    from_user_id: UUID | None
    to_user_id: UUID | None
    status: str
    tx_signature: str | None


_TICKET_COLUMNS = """t.id, t.tenant_id, t.event_id, t.user_id, t.status, t.token_mint,
                  t.ticket_number, e.name AS event_name, t.wallet_address"""


async def lock_ticket(conn: Connection, ticket_id: UUID) -> TicketRow | None:
    """The ticket, locked for the rest of the transaction; None when invisible to this tenant."""
    return (await lock_tickets(conn, [ticket_id])).get(ticket_id)


async def lock_tickets(conn: Connection, ticket_ids: list[UUID]) -> dict[UUID, TicketRow]:
    """Tickets locked in id order (so concurrent batches cannot deadlock).

    One primary-key probe per id, in the order given (sorted here), whatever the planner's
    statistics say: without them it read all of the tenant's tickets to find a few.
    """
    rows = await conn.fetch(
        f"""SELECT {_TICKET_COLUMNS}
              FROM unnest($1::uuid[]) AS w(id)
             CROSS JOIN LATERAL (
                   SELECT * FROM tickets l
                    WHERE l.id = w.id AND l.deleted_at IS NULL
                      AND l.tenant_id = current_tenant_id()
                      FOR UPDATE) t
              LEFT JOIN events e ON e.id = t.event_id""",  # noqa: S608 - constant columns
        sorted(set(ticket_ids)),
    )
    return {row["id"]: TicketRow(**dict(row)) for row in rows}


async def get_ticket(conn: Connection, ticket_id: UUID) -> TicketRow | None:
    row = await conn.fetchrow(
        f"""SELECT {_TICKET_COLUMNS}
              FROM tickets t LEFT JOIN events e ON e.id = t.event_id
             WHERE t.id = $1 AND t.tenant_id = current_tenant_id()""",  # noqa: S608 - constant columns
        ticket_id,
    )
    return TicketRow(**dict(row)) if row else None


async def visible_ticket_ids(conn: Connection, ticket_ids: list[UUID]) -> set[UUID]:
    """Those of the given tickets this tenant can see."""
    rows = await conn.fetch(
        "SELECT id FROM tickets WHERE id = ANY($1::uuid[]) AND tenant_id = current_tenant_id()",
        ticket_ids,
    )
    return {row["id"] for row in rows}


async def lock_transfer(conn: Connection, transfer_id: UUID) -> TransferRow | None:
    return (await lock_transfers(conn, [transfer_id])).get(transfer_id)


async def lock_transfers(conn: Connection, transfer_ids: list[UUID]) -> dict[UUID, TransferRow]:
    """Transfers locked in id order."""
    rows = await conn.fetch(
        """SELECT id, ticket_id, from_user_id, to_user_id, status, tx_signature
             FROM ticket_transfers
            WHERE id = ANY($1::uuid[]) AND tenant_id = current_tenant_id()
            ORDER BY id FOR UPDATE""",
        transfer_ids,
    )
    return {row["id"]: TransferRow(**dict(row)) for row in rows}


async def wallet_addresses(conn: Connection, user_ids: list[UUID]) -> dict[UUID, str]:
    """Users' registered external wallets (users without one get a custodial address)."""
    rows = await conn.fetch(
        """SELECT user_id, address FROM wallets
            WHERE user_id = ANY($1::uuid[]) AND tenant_id = current_tenant_id()""",
        user_ids,
    )
    return {row["user_id"]: str(row["address"]) for row in rows}


async def register_wallet(conn: Connection, tenant_id: UUID, user_id: UUID, address: str) -> None:
    await conn.execute(
        """INSERT INTO wallets (tenant_id, user_id, address) VALUES ($1, $2, $3)
           ON CONFLICT (tenant_id, user_id)
           DO UPDATE SET address = EXCLUDED.address, updated_at = now()""",
        tenant_id,
        user_id,
        address,
    )


async def set_minted_many(
    conn: Connection, minted: list[tuple[UUID, str, str | None, str | None]]
) -> None:
    """Record tickets' mints (ticket, mint, the wallet it went to, status or None to keep it).

    One statement for the batch: a ticket update prepares its 11 checks, 5 triggers and
    generated column once per execution, so a statement per row paid that for every row.
    Each id is one primary-key probe that locks its row, then the row is updated by its
    address, whatever the planner's statistics say (joined on the id alone, a table with no
    statistics was read through the tenant's index).
    """
    if not minted:
        return
    await conn.execute(
        """UPDATE tickets t
              SET token_mint = u.mint, wallet_address = coalesce(u.wallet, t.wallet_address),
                  is_nft = true, minted_at = now(),
                  status = coalesce(u.status, t.status),
                  status_changed_at = CASE WHEN u.status IS NULL THEN t.status_changed_at
                                           ELSE now() END
             FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[])
                  AS u(id, mint, wallet, status)
            CROSS JOIN LATERAL (SELECT ctid FROM tickets WHERE id = u.id FOR UPDATE) found
            WHERE t.ctid = found.ctid""",
        *columns(minted, 4),
    )


async def set_status_many(conn: Connection, statuses: list[tuple[UUID, str]]) -> None:
    """Give tickets (ticket, status) their new status, in one statement (as above)."""
    if not statuses:
        return
    await conn.execute(
        """UPDATE tickets t SET status = u.status, status_changed_at = now()
             FROM unnest($1::uuid[], $2::text[]) AS u(id, status)
            CROSS JOIN LATERAL (SELECT ctid FROM tickets WHERE id = u.id FOR UPDATE) found
            WHERE t.ctid = found.ctid""",
        *columns(statuses, 2),
    )


async def complete_transfer(
    conn: Connection, transfer_id: UUID, signature: str, to_wallet: str
) -> None:
    """The transfer's NFT moved on chain: complete it, naming the wallet it went to.

    The seed's apply_completed_transfer trigger then hands the ticket to the recipient
    (user, `wallet_address` from `to_wallet`, `transfer_count` + 1, status transferred):
    chainworker does not touch those columns itself, so each transfer counts once.
    """
    await conn.execute(
        """UPDATE ticket_transfers
              SET status = 'completed', tx_signature = $2, to_wallet = $3,
                  blockchain_confirmed = true, blockchain_confirmed_at = now(),
                  completed_at = now()
            WHERE id = $1 AND tenant_id = current_tenant_id()""",
        transfer_id,
        signature,
        to_wallet,
    )


async def transfer_tickets(conn: Connection, transfer_ids: list[UUID]) -> dict[UUID, UUID]:
    """Transfer id -> ticket id, for the transfers this tenant can see."""
    rows = await conn.fetch(
        """SELECT id, ticket_id FROM ticket_transfers
            WHERE id = ANY($1::uuid[]) AND tenant_id = current_tenant_id()""",
        transfer_ids,
    )
    return {row["id"]: row["ticket_id"] for row in rows}


async def tickets_with_mints(conn: Connection) -> list[TicketRow]:
    """The tenant's tickets that have a token mint recorded."""
    rows = await conn.fetch(
        f"""SELECT {_TICKET_COLUMNS}
              FROM tickets t LEFT JOIN events e ON e.id = t.event_id
             WHERE t.token_mint IS NOT NULL AND t.tenant_id = current_tenant_id()"""  # noqa: S608
    )
    return [TicketRow(**dict(row)) for row in rows]


async def event_exists(conn: Connection, event_id: UUID) -> bool:
    """Whether the event is visible to the current tenant."""
    found = await conn.fetchval(
        "SELECT 1 FROM events WHERE id = $1 AND tenant_id = current_tenant_id()", event_id
    )
    return found is not None


async def event_name(conn: Connection, event_id: UUID) -> str | None:
    """The event's name; None when the event is not visible to the current tenant."""
    name: str | None = await conn.fetchval(
        "SELECT name FROM events WHERE id = $1 AND tenant_id = current_tenant_id()", event_id
    )
    return name


async def user_exists(conn: Connection, user_id: UUID) -> bool:
    """Whether the user (a wallet's owner) is visible to the current tenant."""
    found = await conn.fetchval(
        "SELECT 1 FROM users WHERE id = $1 AND tenant_id = current_tenant_id()", user_id
    )
    return found is not None


async def burnable_ticket_ids(conn: Connection, event_id: UUID, statuses: list[str]) -> list[UUID]:
    """The event's minted, undeleted tickets in one of `statuses`, in id order."""
    rows = await conn.fetch(
        """SELECT id FROM tickets
            WHERE event_id = $1 AND token_mint IS NOT NULL AND deleted_at IS NULL
              AND status = ANY($2::text[]) AND tenant_id = current_tenant_id()
            ORDER BY id""",
        event_id,
        statuses,
    )
    return [row["id"] for row in rows]


async def event_ticket_page(
    conn: Connection, event_id: UUID, statuses: list[str], after: UUID | None, limit: int
) -> list[UUID]:
    """The event's minted, undeleted tickets in one of `statuses`, after `after`, in id
    order, at most `limit`: one keyset page."""
    rows = await conn.fetch(
        """SELECT id FROM tickets
            WHERE event_id = $1 AND token_mint IS NOT NULL AND deleted_at IS NULL
              AND status = ANY($2::text[]) AND tenant_id = current_tenant_id()
              AND ($3::uuid IS NULL OR id > $3)
            ORDER BY id LIMIT $4""",
        event_id,
        statuses,
        after,
        limit,
    )
    return [row["id"] for row in rows]


async def verifiable_ticket_ids(
    conn: Connection, event_id: UUID, statuses: list[str], after: UUID | None, limit: int,
    lasting_refusals: list[str],
) -> list[UUID]:
    """One keyset page (by id, after `after`) of the event's minted, undeleted tickets in one
    of `statuses` that are not verified: no confirmed verify request, and none refused with
    one of `lasting_refusals` (a mint that can never be a member: asking again would only
    be refused again)."""
    rows = await conn.fetch(
        """SELECT t.id FROM tickets t
            WHERE t.event_id = $1 AND t.token_mint IS NOT NULL AND t.deleted_at IS NULL
              AND t.status = ANY($2::text[]) AND t.tenant_id = current_tenant_id()
              AND ($3::uuid IS NULL OR t.id > $3)
              AND NOT EXISTS (
                  SELECT 1 FROM chain_requests r
                   WHERE r.tenant_id = t.tenant_id AND r.ticket_id = t.id
                     AND r.operation = 'verify'
                     AND (r.status = 'confirmed'
                          OR (r.status = 'refused' AND r.outcome_code = ANY($5::text[]))))
            ORDER BY t.id
            LIMIT $4""",
        event_id,
        statuses,
        after,
        limit,
        lasting_refusals,
    )
    return [row["id"] for row in rows]


async def count_event_tickets(conn: Connection, event_id: UUID, statuses: list[str]) -> int:
    """How many tickets `event_ticket_page` goes through."""
    found = await conn.fetchval(
        """SELECT count(*) FROM tickets
            WHERE event_id = $1 AND token_mint IS NOT NULL AND deleted_at IS NULL
              AND status = ANY($2::text[]) AND tenant_id = current_tenant_id()""",
        event_id,
        statuses,
    )
    return int(found)


@dataclass(frozen=True, slots=True)
class StateChangeRow:
    previous_status: str | None
    new_status: str
    actor_type: str
    reason: str | None
    source: str | None
    created_at: datetime


async def state_history(conn: Connection, ticket_id: UUID, limit: int) -> list[StateChangeRow]:
    """The ticket's status changes, newest first, at most `limit`."""
    rows = await conn.fetch(
        "SELECT previous_status, new_status, actor_type, reason, source, created_at"
        " FROM get_ticket_state_history($1, $2)",
        ticket_id,
        limit,
    )
    return [StateChangeRow(**dict(row)) for row in rows]
