"""The live rows of `pending_transactions`: what the confirmation round and reconcile work on.

Claiming live attempts under a lease (the loop's one cross-tenant read), checking each
claimed row before it is relied on (`row_problem`: a poison row is set aside), locks and
leases, the observations a status read leaves, rebroadcast marks, and settling: confirmed,
failed, replaced or expired. Recording attempts and reading their history is
`db.transactions`, the other half of the table family. Writes go to
`pending_transactions` (and `blockchain_sync_log` and `ticket_transfers`, for a
confirmation), through the seed's fail_transaction, and as its confirm_transaction writes
for a round's confirmations, in one statement.

A live attempt is found by its key (id or signature) and the tenant, and its live status
is checked on the row it locked, never in the probe: a probe that names the live statuses
can be planned through the live-ticket partial index, and with statistics taken while
nothing was live (autovacuum's, early in a burst) it then reads every live row of the
tenant (`tests/db/test_plans.py`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from asyncpg import Record
from solders.signature import Signature

from chainworker.db.arrays import columns
from chainworker.db.pool import Connection
from chainworker.lifecycle.model import LIVE_STATUSES, TxOp, TxSnapshot, TxStatus

# Solana's packet limit: no signed transaction is larger.
MAX_TX_BYTES = 1232
# Block heights a cluster can have (lifecycle.heights.MAX_HEIGHT).
MAX_HEIGHT = 2**62
_OPERATIONS = frozenset(TxOp)
_LIVE = frozenset(LIVE_STATUSES)


@dataclass(frozen=True, slots=True)
class LiveAttempt:
    """One claimed live attempt, with what the confirmation loop needs to decide."""

    id: UUID
    tenant_id: UUID
    ticket_id: UUID
    request_id: UUID
    tx_type: TxOp
    tx_signature: str
    status: TxStatus
    attempt: int
    last_valid_block_height: int
    serialized_tx: bytes
    submitted_at: datetime
    last_sent_at: datetime | None
    last_rebroadcast_at: datetime | None
    expiry_check_pending: bool


@dataclass(frozen=True, slots=True)
class PoisonRow:
    """A live row that cannot be handled: the confirmation loop sets it aside."""

    id: UUID
    tenant_id: UUID
    problem: str
    submitted_at: datetime


def row_problem(row: Mapping[str, Any] | Record, *, to_settle: bool = True) -> str | None:
    """Why a live row cannot be confirmed, rebroadcast or replaced; None when it can.

    Anything may have written it (the seed's create_pending_transaction takes any text as a
    signature): every field the loop relies on is checked before the loop relies on it.
    `to_settle`: also what settling needs (its request, its signed bytes); reconcile's scan
    only reads a row's status.
    """
    try:
        signature = Signature.from_string(row["tx_signature"])
    except (ValueError, TypeError):
        return "tx_signature is not a transaction signature"
    if row["tx_type"] not in _OPERATIONS:
        return f"tx_type {str(row['tx_type'])[:40]!r} is not an operation chainworker carries out"
    if row["status"] not in _LIVE:
        return f"status {str(row['status'])[:40]!r} is not a live status"
    if row["ticket_id"] is None or (to_settle and row["request_id"] is None):
        return "the attempt names no request or no ticket"
    attempt, last_valid = row["attempt"], row["last_valid_block_height"]
    if attempt is None or attempt < 1:
        return f"attempt {attempt!r} is not a positive number"
    if last_valid is None or not 0 <= last_valid < MAX_HEIGHT:
        return f"last_valid_block_height {last_valid!r} is not a block height"
    if to_settle:
        raw = row["serialized_tx"]
        if not raw or len(raw) > MAX_TX_BYTES:
            return "the signed bytes are missing or larger than a transaction can be"
        # A transaction's bytes start with its signature count and then its signatures.
        if raw[0] == 0 or raw[1:65] != bytes(signature):
            return "the signed bytes are not the transaction this signature names"
    return None


def decode_live(
    row: Mapping[str, Any] | Record, *, to_settle: bool = True
) -> LiveAttempt | PoisonRow:
    problem = row_problem(row, to_settle=to_settle)
    if problem is not None:
        return PoisonRow(row["id"], row["tenant_id"], problem, row["submitted_at"])
    return _live_attempt(row)


def _live_attempt(row: Mapping[str, Any] | Record) -> LiveAttempt:
    values = dict(row)
    values.setdefault("serialized_tx", b"")
    values["tx_type"] = TxOp(values["tx_type"])
    values["status"] = TxStatus(values["status"])
    return LiveAttempt(**values)


_LIVE_COLUMNS = """p.id, p.tenant_id, p.ticket_id, p.request_id, p.tx_type, p.tx_signature,
    p.status, p.attempt, p.last_valid_block_height, p.serialized_tx, p.submitted_at,
    p.last_sent_at, p.last_rebroadcast_at, p.expiry_check_pending"""


async def claim_live(
    conn: Connection, worker_id: str, limit: int, lease_seconds: int
) -> list[LiveAttempt | PoisonRow]:
    """Claim live attempts of every tenant under a lease (the loop's one cross-tenant path).

    Rows that cannot be handled come back as PoisonRow, for the caller to set aside.
    """
    rows = await conn.fetch(
        "SELECT * FROM chainworker_claim_live_transactions($1, $2, $3)",
        worker_id,
        limit,
        lease_seconds,
    )
    return [decode_live(row) for row in rows]


async def quarantine(conn: Connection, rows: Sequence[tuple[UUID, str]]) -> None:
    """Set live attempts (id, why) of the current tenant aside: the loop claims them no more.

    They stay live (they may still land): a person settles them (`chainworker tx ...`).
    """
    await conn.execute(
        """UPDATE pending_transactions p
              SET quarantined_at = now(), last_error = u.problem,
                  lease_owner = NULL, lease_until = NULL
             FROM unnest($1::uuid[], $2::text[]) AS u(id, problem)
            CROSS JOIN LATERAL (SELECT ctid, status FROM pending_transactions
                                 WHERE id = u.id AND tenant_id = current_tenant_id()
                                OFFSET 0 FOR UPDATE) found
            WHERE p.ctid = found.ctid AND found.status IN ('pending', 'confirming')""",
        [tx_id for tx_id, _ in rows],
        [problem[:1000] for _, problem in rows],
    )


@dataclass(frozen=True, slots=True)
class Locked:
    """An attempt re-read under its row lock: as it is now, who holds its lease, and where
    it sends the NFT."""

    attempt: LiveAttempt
    lease_owner: str | None
    destination: str | None


async def lock_live(conn: Connection, tx_id: UUID) -> Locked | None:
    """Re-read one attempt under the tenant's context and lock it; None when no longer live."""
    row = await conn.fetchrow(
        "SELECT * FROM ("  # noqa: S608 (a constant column list)
        f" SELECT {_LIVE_COLUMNS}, p.lease_owner, p.metadata->>'destination' AS destination"
        " FROM pending_transactions p WHERE p.id = $1 AND p.tenant_id = current_tenant_id()"
        " OFFSET 0 FOR UPDATE) p WHERE p.status IN ('pending', 'confirming')",
        tx_id,
    )
    if row is None:
        return None
    values = dict(row)
    lease_owner, destination = values.pop("lease_owner"), values.pop("destination")
    return Locked(_live_attempt(values), lease_owner, destination)


async def take_leases(
    conn: Connection, owner: str, tx_ids: Sequence[UUID], lease_seconds: int
) -> set[UUID]:
    """Lease the current tenant's live attempts that nobody else holds (reconcile --apply
    takes the loop's lease, so the two never act on one row at once); the ids taken."""
    rows = await conn.fetch(
        """WITH free AS (
               SELECT id FROM pending_transactions
                WHERE id = ANY($2::uuid[]) AND tenant_id = current_tenant_id()
                  AND status IN ('pending', 'confirming') AND quarantined_at IS NULL
                  AND (lease_until IS NULL OR lease_until < now() OR lease_owner = $1)
                  FOR UPDATE SKIP LOCKED)
           UPDATE pending_transactions p
              SET lease_owner = $1, lease_until = now() + make_interval(secs => $3)
             FROM free WHERE p.id = free.id
           RETURNING p.id""",
        owner,
        list(tx_ids),
        lease_seconds,
    )
    return {row["id"] for row in rows}


async def release_leases(conn: Connection, owner: str, tx_ids: Sequence[UUID]) -> None:
    await conn.execute(
        """UPDATE pending_transactions SET lease_owner = NULL, lease_until = NULL
            WHERE id = ANY($2::uuid[]) AND lease_owner = $1 AND tenant_id = current_tenant_id()""",
        owner,
        list(tx_ids),
    )


async def lock_live_many(conn: Connection, tx_ids: list[UUID]) -> dict[UUID, str | None]:
    """Lock the attempts that are still live, in id order: id -> the wallet each sends the
    NFT to (mint, transfer), as recorded when it was signed."""
    rows = await conn.fetch(
        """SELECT l.id, l.destination
             FROM (SELECT id, status, metadata->>'destination' AS destination
                     FROM pending_transactions
                    WHERE id = ANY($1::uuid[]) AND tenant_id = current_tenant_id()
                    ORDER BY id OFFSET 0 FOR UPDATE) l
            WHERE l.status IN ('pending', 'confirming')""",
        tx_ids,
    )
    return {row["id"]: row["destination"] for row in rows}


@dataclass(frozen=True, slots=True)
class Observed:
    """An attempt's fields as a status read found them and as the decision leaves them."""

    tx_id: UUID
    read: TxSnapshot
    after: TxSnapshot
    slot: int | None = None  # where it was seen, when it was


async def record_observations(conn: Connection, owner: str, items: Sequence[Observed]) -> None:
    """Write what status reads changed (seen on chain: confirming at a slot; unknown past
    its blockhash: one more read decides). Only rows still as they were read, and leased by
    `owner`, are written: an observation is never written over a newer one.

    One statement for the round, its setup paid once, not once per row. Each attempt is
    one primary-key probe that locks its row (in id order) and checks it under the lock,
    then the row is updated by its address, whatever the planner's statistics say: joined
    on the id alone, a table it had no statistics for was read whole for every round.
    """
    if not items:
        return
    await conn.execute(
        """UPDATE pending_transactions p
              SET status = u.after_status, expiry_check_pending = u.after_pending,
                  slot = coalesce(u.slot, p.slot)
             FROM unnest($2::uuid[], $3::text[], $4::bool[], $5::text[], $6::bool[],
                         $7::bigint[]) AS u(id, read_status, read_pending, after_status,
                                            after_pending, slot)
            CROSS JOIN LATERAL (SELECT ctid FROM pending_transactions
                                 WHERE id = u.id AND status = u.read_status
                                   AND expiry_check_pending = u.read_pending
                                   AND lease_owner = $1 AND tenant_id = current_tenant_id()
                                   FOR UPDATE) found
            WHERE p.ctid = found.ctid""",
        owner,
        *columns((
            (item.tx_id, item.read.status, item.read.expiry_check_pending,
             item.after.status, item.after.expiry_check_pending, item.slot)
            for item in items
        ), 6),
    )


async def mark_rebroadcast(conn: Connection, owner: str, tx_ids: list[UUID]) -> None:
    await conn.execute(
        """UPDATE pending_transactions
              SET last_rebroadcast_at = now(), send_count = send_count + 1
            WHERE id = ANY($2::uuid[]) AND lease_owner = $1
              AND tenant_id = current_tenant_id()""",
        owner,
        tx_ids,
    )


async def confirm_many(conn: Connection, landed: list[tuple[str, int]]) -> None:
    """Confirm attempts (signature, slot) as the seed's confirm_transaction does, row for
    row (the attempt confirmed at its slot, its transfer flagged, a sync-log entry), in one
    statement for them all rather than one call, three statements, per attempt: the
    spend settlement then runs once for the batch (migration 118).

    Each signature is one probe of its unique index that locks the row, in the order
    given, then the row is updated by its address, whatever the statistics say; so is
    each transfer.
    """
    if not landed:
        return
    await conn.execute(
        """WITH confirmed AS (
               UPDATE pending_transactions p
                  SET status = 'confirmed', slot = u.slot, block_time = NULL,
                      confirmed_at = now(), error_code = NULL, error_message = NULL
                 FROM unnest($1::text[], $2::bigint[]) WITH ORDINALITY
                      AS u(signature, slot, n)
                CROSS JOIN LATERAL (SELECT ctid, status FROM pending_transactions
                                     WHERE tx_signature = u.signature
                                       AND tenant_id = current_tenant_id()
                                     OFFSET 0 FOR UPDATE) found
                WHERE p.ctid = found.ctid AND found.status IN ('pending', 'confirming')
               RETURNING p.id, p.tenant_id, p.ticket_id, p.tx_type, p.tx_signature, p.attempt,
                         p.transfer_id, u.slot, u.n
           ), transfers AS (
               UPDATE ticket_transfers t
                  SET tx_signature = c.tx_signature, blockchain_confirmed = true
                 FROM confirmed c
                CROSS JOIN LATERAL (SELECT ctid FROM ticket_transfers
                                     WHERE id = c.transfer_id FOR UPDATE) found
                WHERE t.ctid = found.ctid
           )
           INSERT INTO blockchain_sync_log (tenant_id, entity_type, entity_id, ticket_id,
                                            operation, tx_signature, status, slot, details)
           SELECT c.tenant_id, 'pending_transaction', c.id, c.ticket_id, c.tx_type,
                  c.tx_signature, 'confirmed', c.slot,
                  jsonb_build_object('attempt', c.attempt, 'block_time', NULL)
             FROM confirmed c
            ORDER BY c.n""",
        [signature for signature, _ in landed],
        [slot for _, slot in landed],
    )


async def confirm_replaced(conn: Connection, tx_id: UUID, slot: int) -> None:
    """A replaced attempt landed after all: it is the one that confirmed."""
    await conn.execute(
        """UPDATE pending_transactions
              SET status = 'confirmed', slot = $2, confirmed_at = now(),
                  error_code = NULL, error_message = NULL
            WHERE id = $1 AND status = 'replaced' AND tenant_id = current_tenant_id()""",
        tx_id,
        slot,
    )
    await conn.execute(
        """INSERT INTO blockchain_sync_log (tenant_id, entity_type, entity_id, ticket_id,
                                            operation, tx_signature, status, slot, details)
           SELECT tenant_id, 'pending_transaction', id, ticket_id, tx_type, tx_signature,
                  'confirmed', $2, jsonb_build_object('attempt', attempt, 'adopted', true)
             FROM pending_transactions WHERE id = $1 AND tenant_id = current_tenant_id()""",
        tx_id,
        slot,
    )


async def fail(conn: Connection, signature: str, code: str, message: str, slot: int) -> None:
    """The attempt landed with an error at `slot`: the seed's fail_transaction, then the slot,
    which that function does not record (a failed landing paid its fee in that block)."""
    await conn.execute("SELECT fail_transaction($1, $2, $3)", signature, code, message)
    await conn.execute(
        """UPDATE pending_transactions SET slot = $2
            WHERE tx_signature = $1 AND tenant_id = current_tenant_id()
              AND status = 'failed' AND slot IS NULL""",
        signature,
        slot,
    )


async def finish(conn: Connection, tx_id: UUID, status: TxStatus) -> None:
    """End an attempt as `replaced` or `expired` (no seed function covers those)."""
    if status not in (TxStatus.REPLACED, TxStatus.EXPIRED):
        raise ValueError(f"finish takes replaced or expired, not {status!r}")
    await conn.execute(
        """UPDATE pending_transactions p
              SET status = $2, lease_owner = NULL, lease_until = NULL
             FROM (SELECT ctid, status FROM pending_transactions
                    WHERE id = $1 AND tenant_id = current_tenant_id()
                   OFFSET 0 FOR UPDATE) found
            WHERE p.ctid = found.ctid AND found.status IN ('pending', 'confirming')""",
        tx_id,
        status,
    )
