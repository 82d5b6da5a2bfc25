"""Queries on `pending_transactions`: record signed attempts, and read their history.

Recording (before anything is sent, after asking which tickets have a live attempt
already) is the one way rows come in; the history reads serve
the API's status answers, `chainworker tx` and settling. The live rows' claims, leases,
observations and settling are `db.live_transactions`, the other half of the table family.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from asyncpg import Record

from chainworker.db.errors import busy_on
from chainworker.db.pool import Connection
from chainworker.lifecycle.model import TxStatus

# The seed's one live transaction per ticket (010_unique_constraints.sql).
LIVE_TICKET_INDEX = "uq_pending_tx_live_ticket"


@dataclass(frozen=True, slots=True)
class NewAttempt:
    tenant_id: UUID
    ticket_id: UUID
    event_id: UUID | None
    transfer_id: UUID | None
    request_id: UUID
    op: str
    signature: str
    blockhash: str
    last_valid_block_height: int
    serialized_tx: bytes
    attempt: int
    parent_tx_id: UUID | None
    job_id: str | None
    max_retries: int
    estimated_lamports: int  # fees and rent
    # Where the NFT is taken from (transfer, burn) and where it goes (mint, transfer):
    # kept in the row's metadata, so the outcome records the wallet actually used.
    source: str | None = None
    destination: str | None = None
    # Of estimated_lamports, the rent: an attempt that fails on chain pays only the rest.
    estimated_rent: int = 0
    # Lamports reserved against the tenant's spending limits (audit.reserve_spend), released
    # when the attempt settles; None when nothing was.
    spend_reserved: int | None = None
    # A burn's: the lamports of the accounts it closes, credited to the tenant when it
    # confirms (audit.credit_reclaimed_rent); 0 when it closes none.
    rent_reclaimed: int = 0


async def record_attempt(conn: Connection, new: NewAttempt) -> UUID:
    """Insert one signed attempt before anything is sent; see `record_attempts`."""
    return (await record_attempts(conn, [new]))[0]


async def record_attempts(conn: Connection, attempts: Sequence[NewAttempt]) -> list[UUID]:
    """Insert signed attempts as the seed's create_pending_transaction does, in one
    statement for them all; ids in order.

    Each is stamped as sent: the caller sends right after the commit, and a crash in
    between is covered by the rebroadcast one interval later. TicketBusy when a ticket
    has a live transaction already.
    """
    with busy_on(LIVE_TICKET_INDEX):
        rows = await _insert_attempts(conn, attempts)
    return [UUID(str(row["id"])) for row in rows]


async def _insert_attempts(conn: Connection, attempts: Sequence[NewAttempt]) -> list[Record]:
    # One INSERT rather than one function call (and one INSERT) per row: the table's
    # checks and triggers are set up once for the batch. Signatures are unique, so the
    # ids are matched back to the input's order by them.
    return await conn.fetch(
        """WITH u AS (
               SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[],
                                    $5::text[], $6::bigint[], $7::uuid[], $8::int[],
                                    $9::uuid[], $10::int[], $11::uuid[], $12::bytea[],
                                    $13::text[], $14::uuid[], $15::bigint[], $16::text[],
                                    $17::text[], $18::bigint[], $19::bigint[], $20::bigint[])
                      WITH ORDINALITY
                      AS u(tenant_id, ticket_id, signature, op, blockhash, last_valid,
                           event_id, max_retries, request_id, attempt, parent_tx_id,
                           serialized_tx, job_id, transfer_id, lamports, source,
                           destination, rent, reserved, reclaimed, n)
           ), recorded AS (
               INSERT INTO pending_transactions (
                   tenant_id, tx_signature, tx_type, ticket_id, event_id, blockhash,
                   last_valid_block_height, max_retries, metadata, request_id, attempt,
                   parent_tx_id, serialized_tx, job_id, transfer_id, last_sent_at,
                   send_count)
               SELECT u.tenant_id, u.signature, u.op, u.ticket_id, u.event_id, u.blockhash,
                      u.last_valid, coalesce(u.max_retries, 3),
                      jsonb_strip_nulls(jsonb_build_object(
                          'estimated_lamports', u.lamports, 'source', u.source,
                          'destination', u.destination, 'estimated_rent', u.rent,
                          'spend_reserved', u.reserved,
                          'rent_reclaimed', nullif(u.reclaimed, 0))),
                      u.request_id, coalesce(u.attempt, 1), u.parent_tx_id, u.serialized_tx,
                      u.job_id, u.transfer_id, now(), 1
                 FROM u ORDER BY u.n
               RETURNING id, tx_signature
           )
           SELECT u.n, recorded.id
             FROM u JOIN recorded ON recorded.tx_signature = u.signature
            ORDER BY u.n""",
        [a.tenant_id for a in attempts],
        [a.ticket_id for a in attempts],
        [a.signature for a in attempts],
        [a.op for a in attempts],
        [a.blockhash for a in attempts],
        [a.last_valid_block_height for a in attempts],
        [a.event_id for a in attempts],
        [a.max_retries for a in attempts],
        [a.request_id for a in attempts],
        [a.attempt for a in attempts],
        [a.parent_tx_id for a in attempts],
        [a.serialized_tx for a in attempts],
        [a.job_id for a in attempts],
        [a.transfer_id for a in attempts],
        [a.estimated_lamports for a in attempts],
        [a.source for a in attempts],
        [a.destination for a in attempts],
        [a.estimated_rent for a in attempts],
        [a.spend_reserved for a in attempts],
        [a.rent_reclaimed for a in attempts],
    )


async def tickets_with_live_attempt(conn: Connection, ticket_ids: list[UUID]) -> set[UUID]:
    """Which of these tickets already have a live transaction.

    The seed's `has_pending_transaction` for many tickets in one plan (the function is
    planned again for each ticket), with the tenant compared explicitly.
    """
    rows = await conn.fetch(
        """SELECT t.id FROM unnest($1::uuid[]) AS t(id)
             JOIN LATERAL (SELECT 1 FROM pending_transactions p
                            WHERE p.tenant_id = current_tenant_id() AND p.ticket_id = t.id
                              AND p.status IN ('pending', 'confirming')
                            LIMIT 1) live ON true""",
        ticket_ids,
    )
    return {row["id"] for row in rows}


@dataclass(frozen=True, slots=True)
class AttemptRow:
    id: UUID
    request_id: UUID | None
    ticket_id: UUID
    # The seed's tx_type: one of chainworker's operations, or another the ticket service wrote.
    tx_type: str
    tx_signature: str
    status: TxStatus
    attempt: int
    blockhash: str
    last_valid_block_height: int
    slot: int | None
    error_code: str | None
    error_message: str | None
    submitted_at: datetime
    confirmed_at: datetime | None
    destination: str | None = None  # where it sends the NFT (mint, transfer)


_ATTEMPT_COLUMNS = """id, request_id, ticket_id, tx_type, tx_signature, status, attempt, blockhash,
    last_valid_block_height, slot, error_code, error_message, submitted_at, confirmed_at,
    metadata->>'destination' AS destination"""


async def attempts_for_request(conn: Connection, request_id: UUID) -> list[AttemptRow]:
    rows = await conn.fetch(
        f"SELECT {_ATTEMPT_COLUMNS} FROM pending_transactions"  # noqa: S608 - constant columns
        " WHERE request_id = $1 AND tenant_id = current_tenant_id() ORDER BY attempt",
        request_id,
    )
    return [_attempt_row(row) for row in rows]


async def attempt_by_signature(conn: Connection, signature: str) -> AttemptRow | None:
    row = await conn.fetchrow(
        f"SELECT {_ATTEMPT_COLUMNS} FROM pending_transactions"  # noqa: S608 - constant columns
        " WHERE tx_signature = $1 AND tenant_id = current_tenant_id()",
        signature,
    )
    return _attempt_row(row) if row else None


def _attempt_row(row: Record) -> AttemptRow:
    values = dict(row)
    values["status"] = TxStatus(values["status"])  # the seed's check holds it to the six
    return AttemptRow(**values)
