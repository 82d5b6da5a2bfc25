"""Queries on api_tokens: issue, revoke, and look up through chainworker_authenticate."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID

from chainworker.db.pool import Connection


@dataclass(frozen=True, slots=True)
class InsertedToken:
    id: UUID
    expires_at: datetime | None


@dataclass(frozen=True, slots=True)
class StoredToken:
    """A live token as `chainworker_authenticate` returns it (the secret only hashed)."""

    token_id: UUID
    tenant_id: UUID
    is_admin: bool
    user_id: UUID | None
    token_hash: str


async def insert_token(
    conn: Connection,
    tenant_id: UUID,
    name: str,
    *,
    is_admin: bool,
    user_id: UUID | None,
    token_hash: str,
    ttl: timedelta | None,
) -> InsertedToken:
    """A new token row (no expiry when `ttl` is None)."""
    row = await conn.fetchrow(
        """INSERT INTO api_tokens (tenant_id, name, is_admin, user_id, token_hash, expires_at)
           VALUES ($1, $2, $3, $4, $5, now() + $6::interval)
           RETURNING id, expires_at""",
        tenant_id,
        name,
        is_admin,
        user_id,
        token_hash,
        ttl,
    )
    assert row is not None
    return InsertedToken(id=row["id"], expires_at=row["expires_at"])


async def revoke_token(conn: Connection, token_id: UUID) -> UUID | None:
    """Revoke a live token; its tenant id, or None when no live token matched."""
    value = await conn.fetchval(
        "UPDATE api_tokens SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL"
        " RETURNING tenant_id",
        token_id,
    )
    return value if isinstance(value, UUID) else None


async def authenticate(conn: Connection, token_id: UUID) -> StoredToken | None:
    """The live (unrevoked, unexpired) token with this id, of any tenant; None otherwise."""
    row = await conn.fetchrow("SELECT * FROM chainworker_authenticate($1)", token_id)
    if row is None:
        return None
    return StoredToken(
        token_id=row["token_id"],
        tenant_id=row["tenant_id"],
        is_admin=row["is_admin"],
        user_id=row["user_id"],
        token_hash=row["token_hash"],
    )
