"""Queries on `pending_transactions`: record an attempt, claim live ones, settle them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from chainworker.db.pool import Connection


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


@dataclass(frozen=True, slots=True)
class LiveAttempt:
    """One claimed live attempt, with what the confirmation loop needs to decide."""

    id: UUID
    tenant_id: UUID
    ticket_id: UUID
    request_id: UUID
    tx_type: str
    tx_signature: str
    status: str
    attempt: int
    last_valid_block_height: int
    serialized_tx: bytes
    submitted_at: datetime
    last_sent_at: datetime | None
    last_rebroadcast_at: datetime | None
    expiry_check_pending: bool


@dataclass(frozen=True, slots=True)
class AttemptRow:
    id: UUID
    request_id: UUID | None
    ticket_id: UUID
    tx_type: str
    tx_signature: str
    status: str
    attempt: int
    blockhash: str
    last_valid_block_height: int
    slot: int | None
    error_code: str | None
    error_message: str | None
    submitted_at: datetime
    confirmed_at: datetime | None


async def record_attempt(conn: Connection, new: NewAttempt) -> UUID:
    """Insert one signed attempt before anything is sent; see `record_attempts`."""
    return (await record_attempts(conn, [new]))[0]


async def record_attempts(conn: Connection, attempts: Sequence[NewAttempt]) -> list[UUID]:
    """Insert signed attempts through the seed's function, in one statement; ids in order.

    Each is stamped as sent: the caller sends right after the commit, and a crash in
    between is covered by the rebroadcast one interval later.
    """
    rows = await conn.fetch(
        """SELECT u.n, create_pending_transaction(
                p_tenant_id => u.tenant_id, p_ticket_id => u.ticket_id,
                p_tx_signature => u.signature, p_tx_type => u.op, p_blockhash => u.blockhash,
                p_last_valid_block_height => u.last_valid, p_event_id => u.event_id,
                p_max_retries => u.max_retries, p_request_id => u.request_id,
                p_attempt => u.attempt, p_parent_tx_id => u.parent_tx_id,
                p_serialized_tx => u.serialized_tx, p_job_id => u.job_id,
                p_transfer_id => u.transfer_id,
                p_metadata => jsonb_strip_nulls(jsonb_build_object(
                    'estimated_lamports', u.lamports, 'source', u.source,
                    'destination', u.destination, 'estimated_rent', u.rent,
                    'spend_reserved', u.reserved)),
                p_last_sent_at => now()) AS id
             FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[],
                         $6::bigint[], $7::uuid[], $8::int[], $9::uuid[], $10::int[],
                         $11::uuid[], $12::bytea[], $13::text[], $14::uuid[], $15::bigint[],
                         $16::text[], $17::text[], $18::bigint[], $19::bigint[])
                  WITH ORDINALITY
                  AS u(tenant_id, ticket_id, signature, op, blockhash, last_valid, event_id,
                       max_retries, request_id, attempt, parent_tx_id, serialized_tx, job_id,
                       transfer_id, lamports, source, destination, rent, reserved, n)
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
    )
    return [UUID(str(row["id"])) for row in rows]


async def tickets_with_live_attempt(conn: Connection, ticket_ids: list[UUID]) -> set[UUID]:
    """Which of these tickets already have a live transaction (the seed's check)."""
    rows = await conn.fetch(
        """SELECT t.id FROM unnest($1::uuid[]) AS t(id) WHERE has_pending_transaction(t.id)""",
        ticket_ids,
    )
    return {row["id"] for row in rows}


_LIVE_COLUMNS = """p.id, p.tenant_id, p.ticket_id, p.request_id, p.tx_type, p.tx_signature,
    p.status, p.attempt, p.last_valid_block_height, p.serialized_tx, p.submitted_at,
    p.last_sent_at, p.last_rebroadcast_at, p.expiry_check_pending"""


async def claim_live(
    conn: Connection, worker_id: str, limit: int, lease_seconds: int
) -> list[LiveAttempt]:
    """Claim live attempts of every tenant under a lease (the loop's one cross-tenant path)."""
    rows = await conn.fetch(
        "SELECT * FROM chainworker_claim_live_transactions($1, $2, $3)",
        worker_id,
        limit,
        lease_seconds,
    )
    return [LiveAttempt(**dict(row)) for row in rows]


async def lock_live(conn: Connection, tx_id: UUID) -> LiveAttempt | None:
    """Re-read one attempt under the tenant's context; None when it is no longer live."""
    row = await conn.fetchrow(
        f"SELECT {_LIVE_COLUMNS} FROM pending_transactions p"  # noqa: S608 - constant columns
        " WHERE p.id = $1 AND p.status IN ('pending', 'confirming')"
        " AND p.tenant_id = current_tenant_id() FOR UPDATE",
        tx_id,
    )
    return LiveAttempt(**dict(row)) if row else None


async def lock_live_many(conn: Connection, tx_ids: list[UUID]) -> dict[UUID, str | None]:
    """Lock the attempts that are still live, in id order: id -> the wallet each sends the
    NFT to (mint, transfer), as recorded when it was signed."""
    rows = await conn.fetch(
        """SELECT id, metadata->>'destination' AS destination FROM pending_transactions
            WHERE id = ANY($1::uuid[]) AND status IN ('pending', 'confirming')
              AND tenant_id = current_tenant_id()
            ORDER BY id FOR UPDATE""",
        tx_ids,
    )
    return {row["id"]: row["destination"] for row in rows}


async def mark_confirming(conn: Connection, seen: Sequence[tuple[UUID, int]]) -> None:
    """Attempts (id, slot) seen on chain but not yet at the commitment that settles them."""
    await conn.execute(
        """UPDATE pending_transactions p
              SET status = 'confirming', slot = u.slot, expiry_check_pending = false
             FROM unnest($1::uuid[], $2::bigint[]) AS u(id, slot)
            WHERE p.id = u.id AND p.status IN ('pending', 'confirming')""",
        [tx_id for tx_id, _ in seen],
        [slot for _, slot in seen],
    )


async def mark_expiry_check(conn: Connection, tx_ids: list[UUID]) -> None:
    """Attempts past their blockhash: one more status read decides whether they expired."""
    await conn.execute(
        "UPDATE pending_transactions SET expiry_check_pending = true WHERE id = ANY($1::uuid[])",
        tx_ids,
    )


async def mark_rebroadcast(conn: Connection, tx_ids: list[UUID]) -> None:
    await conn.execute(
        """UPDATE pending_transactions
              SET last_rebroadcast_at = now(), send_count = send_count + 1
            WHERE id = ANY($1::uuid[])""",
        tx_ids,
    )


async def confirm_many(conn: Connection, landed: list[tuple[str, int]]) -> None:
    """Confirm attempts (signature, slot) through the seed's function, in one statement."""
    await conn.execute(
        """SELECT confirm_transaction(u.signature, u.slot)
             FROM unnest($1::text[], $2::bigint[]) AS u(signature, slot)""",
        [signature for signature, _ in landed],
        [slot for _, slot in landed],
    )


async def fail(conn: Connection, signature: str, code: str, message: str) -> None:
    await conn.execute("SELECT fail_transaction($1, $2, $3)", signature, code, message)


async def finish(conn: Connection, tx_id: UUID, status: str) -> None:
    """End an attempt as `replaced` or `expired` (no seed function covers those)."""
    if status not in ("replaced", "expired"):
        raise ValueError(f"finish takes replaced or expired, not {status!r}")
    await conn.execute(
        """UPDATE pending_transactions SET status = $2, lease_owner = NULL, lease_until = NULL
            WHERE id = $1 AND status IN ('pending', 'confirming')""",
        tx_id,
        status,
    )


_ATTEMPT_COLUMNS = """id, request_id, ticket_id, tx_type, tx_signature, status, attempt, blockhash,
    last_valid_block_height, slot, error_code, error_message, submitted_at, confirmed_at"""


async def attempts_for_request(conn: Connection, request_id: UUID) -> list[AttemptRow]:
    rows = await conn.fetch(
        f"SELECT {_ATTEMPT_COLUMNS} FROM pending_transactions"  # noqa: S608 - constant columns
        " WHERE request_id = $1 AND tenant_id = current_tenant_id() ORDER BY attempt",
        request_id,
    )
    return [AttemptRow(**dict(row)) for row in rows]


async def attempt_by_signature(conn: Connection, signature: str) -> AttemptRow | None:
    row = await conn.fetchrow(
        f"SELECT {_ATTEMPT_COLUMNS} FROM pending_transactions"  # noqa: S608 - constant columns
        " WHERE tx_signature = $1 AND tenant_id = current_tenant_id()",
        signature,
    )
    return AttemptRow(**dict(row)) if row else None
