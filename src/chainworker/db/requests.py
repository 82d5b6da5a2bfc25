"""Queries on `chain_requests`: record (collapsing duplicates), read, settle, sweep."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from asyncpg import Record

from chainworker.db.arrays import columns
from chainworker.db.errors import DatabaseError, busy_on
from chainworker.db.pool import Connection
from chainworker.lifecycle.metadata import MetadataChange
from chainworker.lifecycle.model import RequestStatus, TxOp

# At most one live request per (ticket, operation), and per transfer (107_ticket_order.sql);
# one per (ticket, request key) while live or confirmed (114_metadata_update.sql).
_OPERATIONS = {op.value: op for op in TxOp}
_STATUSES = {status.value: status for status in RequestStatus}
LIVE_REQUEST_INDEXES = (
    "uq_chain_requests_live", "uq_chain_requests_live_transfer", "uq_chain_requests_key"
)


@dataclass(frozen=True, slots=True)
class RequestRow:
    id: UUID
    tenant_id: UUID
    ticket_id: UUID
    transfer_id: UUID | None
    operation: TxOp
    reason: str | None
    source: str
    status: RequestStatus
    attempts: int
    outcome_code: str | None
    outcome_message: str | None
    token_mint: str | None
    tx_signature: str | None
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None
    changes: MetadataChange | None = None  # a metadata update's change

    @property
    def is_live(self) -> bool:
        return self.status.is_live

    @classmethod
    def of(cls, row: Record) -> RequestRow:
        """A row as read: the table's checks hold its operation and status to the enums."""
        values = dict(row)
        values["operation"] = _OPERATIONS[values["operation"]]
        values["status"] = _STATUSES[values["status"]]
        values["changes"] = stored_change(values["changes"])
        return cls(**values)


def stored_change(raw: str | None) -> MetadataChange | None:
    """A recorded change as stored (its shape held by the table's check). Its rules are
    checked again before it is carried out, not here: a request is always readable."""
    if raw is None:
        return None
    value = json.loads(raw)
    fields = value.get("fields") or {}
    authority = value.get("authority")
    return MetadataChange(
        tuple(sorted((str(k), str(v)) for k, v in fields.items())),
        tuple(str(k) for k in value.get("remove") or ()),
        None if authority is None else str(authority),
    )


@dataclass(frozen=True, slots=True)
class NewRequest:
    ticket_id: UUID
    operation: TxOp
    transfer_id: UUID | None = None
    reason: str | None = None
    changes: MetadataChange | None = None  # a metadata update's change
    # The way in's own key for this ask: the same key for the same ticket is one request
    # (while live or confirmed). None: every ask is a request of its own.
    key: str | None = None


@dataclass(frozen=True, slots=True)
class Recorded:
    request_id: UUID
    ticket_id: UUID
    created: bool  # False: a live request already existed and is returned instead


_COLUMNS = """id, tenant_id, ticket_id, transfer_id, operation, reason, source, status, attempts,
    outcome_code, outcome_message, token_mint, tx_signature, created_at, updated_at, completed_at,
    changes"""

# One statement per operation kind: a transfer is keyed by its transfer (two transfers of
# one ticket are two requests), a mint or burn by its ticket.
_RECORD_MANY = """
WITH wanted AS (
    SELECT t.ticket_id, t.transfer_id, t.reason, t.ord
      FROM unnest($2::uuid[], $3::uuid[], $4::text[]) WITH ORDINALITY
           AS t(ticket_id, transfer_id, reason, ord)
), inserted AS (
    INSERT INTO chain_requests (tenant_id, ticket_id, transfer_id, operation, reason, source)
    SELECT $1, w.ticket_id, w.transfer_id, $5, w.reason, $6
      FROM wanted w
     ORDER BY w.ord
    ON CONFLICT {conflict} DO NOTHING
    RETURNING id, ticket_id, transfer_id
)
SELECT w.ord, coalesce(i.id, live.id) AS id, w.ticket_id, w.transfer_id,
       (i.id IS NOT NULL) AS created
  FROM wanted w
  LEFT JOIN inserted i ON {same}
  LEFT JOIN chain_requests live
         ON i.id IS NULL
        AND live.tenant_id = $1 AND live.operation = $5
        AND live.status IN ('queued', 'submitted')
        AND live.ticket_id = w.ticket_id
        AND live.transfer_id IS NOT DISTINCT FROM w.transfer_id
 ORDER BY w.ord
"""
_RECORD_BY_TICKET = _RECORD_MANY.format(
    conflict="(tenant_id, ticket_id, operation)"
    " WHERE status IN ('queued', 'submitted') AND operation NOT IN ('transfer', 'metadata_update')",
    same="i.ticket_id = w.ticket_id",
)
_RECORD_BY_TRANSFER = _RECORD_MANY.format(
    conflict="(tenant_id, transfer_id)"
    " WHERE status IN ('queued', 'submitted') AND operation = 'transfer'",
    same="i.transfer_id = w.transfer_id",
)


# Metadata updates: each a request of its own, unless its key names one already made (live or
# confirmed). Ids are given here, so that each ask finds its own row whatever its key.
_RECORD_UPDATES = """
WITH wanted AS (
    SELECT t.id, t.ticket_id, t.changes, t.request_key, t.ord
      FROM unnest($2::uuid[], $3::uuid[], $4::jsonb[], $5::text[]) WITH ORDINALITY
           AS t(id, ticket_id, changes, request_key, ord)
), inserted AS (
    INSERT INTO chain_requests (id, tenant_id, ticket_id, operation, source, changes, request_key)
    SELECT w.id, $1, w.ticket_id, 'metadata_update', $6, w.changes, w.request_key
      FROM wanted w
     ORDER BY w.ord
    ON CONFLICT (tenant_id, ticket_id, request_key)
       WHERE request_key IS NOT NULL
         AND status NOT IN ('failed', 'expired', 'refused', 'abandoned')
    DO NOTHING
    RETURNING id
)
SELECT w.ord, coalesce(i.id, made.id) AS id, (i.id IS NOT NULL) AS created
  FROM wanted w
  LEFT JOIN inserted i ON i.id = w.id
  LEFT JOIN chain_requests made
         ON i.id IS NULL
        AND made.tenant_id = $1 AND made.ticket_id = w.ticket_id
        AND made.request_key = w.request_key
        AND made.status NOT IN ('failed', 'expired', 'refused', 'abandoned')
 ORDER BY w.ord
"""


def _key(item: NewRequest) -> UUID:
    """What makes two asks the same request: the transfer for a transfer, else the ticket."""
    if item.operation == "transfer":
        if item.transfer_id is None:
            raise ValueError("a transfer request needs its transfer id")
        return item.transfer_id
    return item.ticket_id


async def record_requests(
    conn: Connection,
    tenant_id: UUID,
    operation: TxOp,
    items: Sequence[NewRequest],
    source: str,
) -> list[Recorded]:
    """Record many requests of one operation in one round trip, in the order given.

    A live request for the same ticket (mint, burn) or the same transfer is returned
    instead (created=False); the same ticket or transfer twice in one call is one request.
    Metadata updates are each a request of their own, except those of one key (see
    NewRequest.key). Must run inside a tenant transaction.
    """
    if operation == TxOp.METADATA_UPDATE:
        return await _record_updates(conn, tenant_id, items, source)
    unique: dict[UUID, NewRequest] = {}
    for item in items:
        if item.operation != operation:
            raise ValueError(f"mixed operations in one batch: {item.operation} != {operation}")
        unique.setdefault(_key(item), item)
    if not unique:
        return []
    values = list(unique.values())
    sql = _RECORD_BY_TRANSFER if operation == "transfer" else _RECORD_BY_TICKET
    for _ in range(3):
        rows = await conn.fetch(
            sql,
            tenant_id,
            [v.ticket_id for v in values],
            [v.transfer_id for v in values],
            [v.reason for v in values],
            operation,
            source,
        )
        # A live request that settled between the insert and the lookup shows as None:
        # asking again records a new one.
        if all(row["id"] is not None for row in rows):
            by_key = {
                row["transfer_id"] if operation == "transfer" else row["ticket_id"]: row
                for row in rows
            }
            return [
                Recorded(by_key[_key(item)]["id"], item.ticket_id, by_key[_key(item)]["created"])
                for item in items
            ]
    raise DatabaseError("could not record requests: live requests kept changing")


async def _record_updates(
    conn: Connection, tenant_id: UUID, items: Sequence[NewRequest], source: str
) -> list[Recorded]:
    asks: dict[object, tuple[UUID, NewRequest]] = {}
    for index, item in enumerate(items):
        if item.operation != TxOp.METADATA_UPDATE:
            raise ValueError(f"mixed operations in one batch: {item.operation} != metadata_update")
        if item.changes is None:
            raise ValueError("a metadata update needs its change")
        same: object = (item.ticket_id, item.key) if item.key is not None else index
        asks.setdefault(same, (uuid.uuid4(), item))
    if not asks:
        return []
    found: dict[UUID, tuple[UUID, bool]] = {}  # ask's own id -> (request id, created)
    pending = list(asks.values())
    for _ in range(3):
        rows = await conn.fetch(
            _RECORD_UPDATES,
            tenant_id,
            [new_id for new_id, _ in pending],
            [item.ticket_id for _, item in pending],
            [json.dumps(item.changes.as_json()) for _, item in pending if item.changes],
            [item.key for _, item in pending],
            source,
        )
        # One made under the key that ended between the insert and the lookup shows as
        # None: that ask is asked again (the others are recorded).
        for row in rows:
            if row["id"] is not None:
                found[pending[row["ord"] - 1][0]] = (row["id"], row["created"])
        pending = [ask for ask in pending if ask[0] not in found]
        if not pending:
            out = []
            for index, item in enumerate(items):
                same = (item.ticket_id, item.key) if item.key is not None else index
                request_id, created = found[asks[same][0]]
                out.append(Recorded(request_id, item.ticket_id, created))
            return out
    raise DatabaseError("could not record requests: requests under one key kept changing")


async def keyed_tickets(conn: Connection, key: str, ticket_ids: Sequence[UUID]) -> set[UUID]:
    """Those of the tickets that have a request under `key`, live or confirmed (what
    recording them under that key again would find)."""
    rows = await conn.fetch(
        """SELECT DISTINCT ticket_id FROM chain_requests
            WHERE tenant_id = current_tenant_id() AND ticket_id = ANY($2::uuid[])
              AND request_key = $1
              AND status NOT IN ('failed', 'expired', 'refused', 'abandoned')""",
        key,
        list(ticket_ids),
    )
    return {row["ticket_id"] for row in rows}


async def keyed_status_counts(conn: Connection, key: str) -> dict[str, int]:
    """The tenant's requests under `key`, counted by status (a bulk run's progress)."""
    rows = await conn.fetch(
        """SELECT status, count(*) AS n FROM chain_requests
            WHERE tenant_id = current_tenant_id() AND request_key = $1 GROUP BY status""",
        key,
    )
    return {row["status"]: int(row["n"]) for row in rows}


async def earlier_live(conn: Connection, requests: Sequence[RequestRow]) -> set[UUID]:
    """Which of these requests must wait: an earlier request of their ticket is still live.

    The requests of one ticket run in acceptance order (`seq`), one at a time.
    """
    if not requests:
        return set()
    # One probe of the primary key and one of the ticket's live index per request, whatever
    # the statistics say: a burst of requests the planner has no statistics for yet made it
    # scan every live request of the tenant for each one (55 ms for 50 requests at 6,000).
    rows = await conn.fetch(
        """SELECT w.id FROM unnest($1::uuid[]) AS w(id)
             JOIN LATERAL (SELECT r.ticket_id, r.seq FROM chain_requests r
                            WHERE r.id = w.id AND r.tenant_id = current_tenant_id()
                            LIMIT 1) r ON true
             JOIN LATERAL (SELECT 1 FROM chain_requests e
                            WHERE e.tenant_id = current_tenant_id()
                              AND e.ticket_id = r.ticket_id
                              AND e.status IN ('queued', 'submitted') AND e.seq < r.seq
                            LIMIT 1) earlier ON true""",
        [request.id for request in requests],
    )
    return {row["id"] for row in rows}


async def verified_tickets(conn: Connection, ticket_ids: Sequence[UUID]) -> set[UUID]:
    """Those of the tickets that are members of their event's group: a verify confirmed."""
    rows = await conn.fetch(
        """SELECT DISTINCT ticket_id FROM chain_requests
            WHERE ticket_id = ANY($1::uuid[]) AND operation = 'verify' AND status = 'confirmed'
              AND tenant_id = current_tenant_id()""",
        sorted(set(ticket_ids)),
    )
    return {row["ticket_id"] for row in rows}


async def get_request(
    conn: Connection, request_id: UUID, *, lock: bool = False
) -> RequestRow | None:
    sql = (
        f"SELECT {_COLUMNS} FROM chain_requests"  # noqa: S608 - constant columns
        " WHERE id = $1 AND tenant_id = current_tenant_id()"
    )
    row = await conn.fetchrow(sql + (" FOR UPDATE" if lock else ""), request_id)
    return RequestRow.of(row) if row else None


async def get_requests(conn: Connection, request_ids: list[UUID]) -> dict[UUID, RequestRow]:
    """Many requests by id, locked in id order.

    One primary-key probe per id, in the order given (sorted here), whatever the planner's
    statistics say: without them it read all of the tenant's requests to find a few.
    """
    sql = (
        "SELECT r.* FROM unnest($1::uuid[]) AS w(id)"  # noqa: S608 - constant columns
        f" CROSS JOIN LATERAL (SELECT {_COLUMNS} FROM chain_requests"
        " WHERE id = w.id AND tenant_id = current_tenant_id() FOR UPDATE) r"
    )
    rows = await conn.fetch(sql, sorted(set(request_ids)))
    return {row["id"]: RequestRow.of(row) for row in rows}


async def latest_for_ticket(conn: Connection, ticket_id: UUID, limit: int = 20) -> list[RequestRow]:
    sql = (
        f"SELECT {_COLUMNS} FROM chain_requests WHERE ticket_id = $1"  # noqa: S608
        " AND tenant_id = current_tenant_id() ORDER BY created_at DESC LIMIT $2"
    )
    return [RequestRow.of(row) for row in await conn.fetch(sql, ticket_id, limit)]


async def mark_submitted(conn: Connection, submitted: Sequence[tuple[UUID, str, int]]) -> None:
    """Requests (id, signature, attempt) whose attempt is recorded and about to be sent.

    One statement for the group, its setup paid once, not once per row. Each id is one
    primary-key probe that locks its row, then the row is updated by its address, whatever
    the planner's statistics say: joined on the id alone, it read all of the tenant's
    requests when the table had no statistics yet.
    """
    if not submitted:
        return
    await conn.execute(
        """UPDATE chain_requests r
              SET status = 'submitted', tx_signature = u.signature, attempts = u.attempts,
                  updated_at = now()
             FROM unnest($1::uuid[], $2::text[], $3::int[]) AS u(id, signature, attempts)
            CROSS JOIN LATERAL (SELECT ctid FROM chain_requests
                                 WHERE id = u.id AND tenant_id = current_tenant_id()
                                   FOR UPDATE) found
            WHERE r.ctid = found.ctid""",
        *columns(submitted, 3),
    )


@dataclass(frozen=True, slots=True)
class Settlement:
    request_id: UUID
    status: RequestStatus
    code: str | None = None
    message: str | None = None
    token_mint: str | None = None
    signature: str | None = None


async def settle_many(conn: Connection, settlements: Sequence[Settlement]) -> int:
    """Give live requests their final status, in one statement (probing as mark_submitted).
    Returns how many were live: a request already final is left as it is."""
    for item in settlements:
        if item.status.is_live:
            raise ValueError(f"{item.status!r} is not a final request status")
    if not settlements:
        return 0
    result = await conn.execute(
        """UPDATE chain_requests r
              SET status = u.status, outcome_code = u.code, outcome_message = u.message,
                  token_mint = coalesce(u.mint, r.token_mint),
                  tx_signature = coalesce(u.signature, r.tx_signature),
                  updated_at = now(), completed_at = now()
             FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[],
                         $6::text[]) AS u(id, status, code, message, mint, signature)
            CROSS JOIN LATERAL (SELECT ctid FROM chain_requests
                                 WHERE id = u.id AND status IN ('queued', 'submitted')
                                   AND tenant_id = current_tenant_id()
                                   FOR UPDATE) found
            WHERE r.ctid = found.ctid""",
        *columns((
            (i.request_id, i.status, i.code, i.message, i.token_mint, i.signature)
            for i in settlements
        ), 6),
    )
    return int(result.rsplit(" ", 1)[1])


async def settle(
    conn: Connection,
    request_id: UUID,
    status: RequestStatus,
    *,
    code: str | None = None,
    message: str | None = None,
    token_mint: str | None = None,
    signature: str | None = None,
) -> bool:
    """Give a live request its final status. False when it was already final."""
    settled = await settle_many(
        conn, [Settlement(request_id, status, code, message, token_mint, signature)]
    )
    return settled == 1


async def requeue(conn: Connection, request_id: UUID) -> None:
    """Back to queued (a retry from the CLI, or after a deferral): the sweeper will see it.

    TicketBusy when the ticket has another live request of the kind (run it in a savepoint).
    """
    with busy_on(*LIVE_REQUEST_INDEXES):
        await conn.execute(
            """UPDATE chain_requests
                  SET status = 'queued', enqueued_at = now(), updated_at = now(),
                      outcome_code = NULL, outcome_message = NULL, completed_at = NULL
                WHERE id = $1 AND tenant_id = current_tenant_id()""",
            request_id,
        )


async def stale_requests(
    conn: Connection, grace_seconds: float, limit: int
) -> list[tuple[UUID, UUID, str]]:
    """Queued requests of every tenant whose job may be lost (the sweeper's narrow path)."""
    rows = await conn.fetch(
        "SELECT * FROM chainworker_stale_requests($1, $2)", grace_seconds, limit
    )
    return [(row["id"], row["tenant_id"], row["operation"]) for row in rows]


async def status_counts(conn: Connection, operation: str) -> dict[str, int]:
    """The tenant's requests of one operation, counted by status."""
    rows = await conn.fetch(
        """SELECT status, count(*) AS n FROM chain_requests
            WHERE operation = $1 AND tenant_id = current_tenant_id() GROUP BY status""",
        operation,
    )
    return {row["status"]: int(row["n"]) for row in rows}


@dataclass(frozen=True, slots=True)
class OutcomeSummary:
    operation: TxOp
    status: RequestStatus
    count: int
    retries: int
    p50_seconds: float
    p99_seconds: float


async def outcome_summary(conn: Connection) -> list[OutcomeSummary]:
    """The tenant's requests by operation and status, with retries and latency percentiles."""
    rows = await conn.fetch(
        """SELECT operation, status, count(*) AS n,
                  coalesce(sum(greatest(attempts - 1, 0)), 0) AS retries,
                  coalesce(percentile_cont(0.5) WITHIN GROUP (
                      ORDER BY extract(epoch FROM completed_at - created_at)), 0) AS p50,
                  coalesce(percentile_cont(0.99) WITHIN GROUP (
                      ORDER BY extract(epoch FROM completed_at - created_at)), 0) AS p99
             FROM chain_requests WHERE tenant_id = current_tenant_id()
            GROUP BY operation, status ORDER BY operation, status"""
    )
    return [
        OutcomeSummary(TxOp(row["operation"]), RequestStatus(row["status"]), int(row["n"]),
                       int(row["retries"]),
                       float(row["p50"]), float(row["p99"]))
        for row in rows
    ]
