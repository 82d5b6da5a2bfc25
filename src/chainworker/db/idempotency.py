"""Idempotency keys, through the shared schema's functions: acquire, complete, release."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from chainworker.db.pool import Connection


@dataclass(frozen=True, slots=True)
class Acquired:
    """What `acquire_idempotency_key` decided.

    outcome: acquired, cached, hash_mismatch or in_progress; response_* only when cached.
    """

    key_id: UUID | None
    outcome: str
    response_status: int | None
    response_body: Any


async def acquire_key(
    conn: Connection,
    tenant_id: UUID,
    key: str,
    operation: str,
    request_hash: str,
    *,
    locked_by: str,
    lock_seconds: int,
    ttl_seconds: int,
) -> Acquired:
    """Check and lock (tenant, key, operation), without waiting for the commit to flush.

    The claim need not be durable on its own: the work's transaction, which stores the
    response, commits after it and flushes the WAL up to and past it. Call in a
    transaction of its own.
    """
    await conn.execute("SET LOCAL synchronous_commit = off")
    row = await conn.fetchrow(
        "SELECT * FROM acquire_idempotency_key($1, $2, $3, $4, $5, $6, $7)",
        tenant_id,
        key,
        operation,
        request_hash,
        locked_by,
        lock_seconds,
        ttl_seconds,
    )
    assert row is not None
    body = row["response_body"]
    return Acquired(
        key_id=row["key_id"],
        outcome=row["outcome"],
        response_status=row["response_status"],
        response_body=json.loads(body) if isinstance(body, str) else body,
    )


async def complete_key(conn: Connection, key_id: UUID, status: int, body: dict[str, Any]) -> None:
    """Store the response (and release the lock) of a processing key."""
    await conn.execute(
        "SELECT complete_idempotency_key($1, $2, $3::jsonb)",
        key_id,
        status,
        json.dumps(body),
    )


async def release_key_failed(conn: Connection, key_id: UUID) -> None:
    """Release a processing key's lock and mark it failed, so a retry runs again."""
    await conn.execute("SELECT release_idempotency_lock($1, true)", key_id)
