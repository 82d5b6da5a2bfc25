"""Queries on `outbox` for the relay: claim requested rows, mark them processed or failed."""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from chainworker.db.pool import Connection


@dataclass(frozen=True, slots=True)
class OutboxRequest:
    """One claimed outbox row asking chainworker for a request.

    The payload itself stays in the database: the claim checks its shape, size and depth
    (`problem`, None when fine) and hands over the fields the relay reads: `reason`, and a
    metadata update's fields (keys and values, in key order) and keys to remove.
    """

    id: int
    tenant_id: UUID
    aggregate_type: str
    aggregate_id: UUID
    event_type: str
    reason: str | None
    problem: str | None
    attempts: int
    field_keys: list[str] | None = None
    field_values: list[str] | None = None
    remove_keys: list[str] | None = None


async def claim_requests(conn: Connection, limit: int) -> list[OutboxRequest]:
    """Claim up to `limit` requested rows of every tenant (FOR UPDATE SKIP LOCKED)."""
    rows = await conn.fetch("SELECT * FROM chainworker_claim_outbox_requests($1)", limit)
    return [OutboxRequest(**dict(row)) for row in rows]


async def mark_processed(conn: Connection, outbox_id: int) -> None:
    """The row's request is recorded: processed, one more attempt, no error."""
    await conn.execute(
        """UPDATE outbox SET processed_at = now(), attempts = attempts + 1, last_error = NULL
            WHERE id = $1 AND tenant_id = current_tenant_id()""",
        outbox_id,
    )


async def mark_failed(
    conn: Connection, outbox_id: int, error: str, quarantine: bool, backoff_seconds: float
) -> None:
    """Record the error. Quarantined: set aside now (processed, with the reason), for a
    person; else available again after the backoff."""
    await conn.execute(
        """UPDATE outbox
              SET attempts = attempts + 1, last_error = $2,
                  processed_at = CASE WHEN $3 THEN now() END,
                  quarantined_at = CASE WHEN $3 THEN now() END,
                  available_at = CASE WHEN $3 THEN available_at
                                      ELSE now() + make_interval(secs => $4) END
            WHERE id = $1 AND tenant_id = current_tenant_id()""",
        outbox_id,
        error,
        quarantine,
        backoff_seconds,
    )
