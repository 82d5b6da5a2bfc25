"""Opaque bearer tokens: their text, their stored hash, issuing, revoking and verifying.

A token reads `cwt_<id as 32 hex>_<secret>`. The id finds the row; only
sha256(secret) is stored, and it is compared in constant time. The secret is shown
once, when the token is issued.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from uuid import UUID

import asyncpg

from chainworker.db import api_tokens, tickets
from chainworker.db.pool import Connection, tenant_transaction
from chainworker.text import shown

TOKEN_PREFIX = "cwt_"
_TOKEN_TEXT = re.compile(r"^cwt_([0-9a-f]{32})_([A-Za-z0-9_-]{43})$")
_TTL_TEXT = re.compile(r"^([0-9]{1,6})([smhdw])$")
_TTL_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
# Longer would be a token that never ends in practice; 999999w would not fit a timestamp.
MAX_TTL = timedelta(days=3650)


class UnknownUser(LookupError):
    """The user a token is to act for is not a user of its tenant."""


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the token and the tenant it is bound to."""

    token_id: UUID
    tenant_id: UUID
    is_admin: bool
    user_id: UUID | None


@dataclass(frozen=True, slots=True)
class IssuedToken:
    token_id: UUID
    tenant_id: UUID
    name: str
    is_admin: bool
    expires_at: datetime | None
    token: str  # shown once


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def parse_token(text: str) -> tuple[UUID, str] | None:
    """(token id, secret) of a well-formed token; None otherwise."""
    match = _TOKEN_TEXT.match(text)
    if match is None:
        return None
    return UUID(hex=match.group(1)), match.group(2)


def parse_ttl(text: str) -> timedelta:
    """`30d`, `12h`, `90m`, `3600s`, `2w` -> a positive duration; ValueError otherwise."""
    match = _TTL_TEXT.match(text.strip())
    if match is None or int(match.group(1)) == 0:
        raise ValueError(f"ttl {shown(text)} is not a positive duration like 30d, 12h, 90m")
    ttl = timedelta(seconds=int(match.group(1)) * _TTL_UNITS[match.group(2)])
    if ttl > MAX_TTL:
        raise ValueError(f"ttl {shown(text)} is longer than {MAX_TTL.days} days")
    return ttl


async def issue_token(
    pool: asyncpg.Pool,
    tenant_id: UUID,
    name: str,
    *,
    is_admin: bool = False,
    user_id: UUID | None = None,
    ttl: timedelta | None = None,
) -> IssuedToken:
    """Create a token for a tenant and return it with its secret (stored only hashed)."""
    secret = secrets.token_urlsafe(32)
    async with tenant_transaction(pool, tenant_id, actor_type="admin", source="cli") as conn:
        # The users table's key alone would let a token act for another tenant's user.
        if user_id is not None and not await tickets.user_exists(conn, user_id):
            raise UnknownUser(f"no user {user_id} in tenant {tenant_id}")
        row = await api_tokens.insert_token(
            conn,
            tenant_id,
            name,
            is_admin=is_admin,
            user_id=user_id,
            token_hash=hash_secret(secret),
            ttl=ttl,
        )
    token_id = row.id
    return IssuedToken(
        token_id=token_id,
        tenant_id=tenant_id,
        name=name,
        is_admin=is_admin,
        expires_at=row.expires_at,
        token=f"{TOKEN_PREFIX}{token_id.hex}_{secret}",
    )


async def revoke_token(conn: Connection, token_id: UUID) -> UUID | None:
    """Revoke a live token of any tenant; its tenant id, or None when no live token matched.

    Runs as the operator (the owner connection of `chainworker token revoke`).
    """
    return await api_tokens.revoke_token(conn, token_id)


async def verify(conn: Connection, text: str) -> Principal | None:
    """The principal of a live token whose secret matches; None for anything else."""
    parsed = parse_token(text)
    if parsed is None:
        return None
    token_id, secret = parsed
    row = await api_tokens.authenticate(conn, token_id)
    if row is None:
        # Hash anyway so an unknown id costs the same as a wrong secret.
        hmac.compare_digest(hash_secret(secret), "0" * 64)
        return None
    if not hmac.compare_digest(hash_secret(secret), row.token_hash):
        return None
    return Principal(row.token_id, row.tenant_id, row.is_admin, row.user_id)


@dataclass
class TokenCache:
    """Verified tokens, trusted for a few seconds so each call does not hit the database.

    Keyed by the full token's hash, so a cached entry only answers the exact token.
    Revocation takes effect within `ttl_seconds`.
    """

    ttl_seconds: float = 5.0
    max_entries: int = 10_000
    _entries: dict[str, tuple[Principal, float]] = field(default_factory=dict)

    def get(self, text: str) -> Principal | None:
        if self.ttl_seconds <= 0:
            return None
        entry = self._entries.get(hash_secret(text))
        if entry is None or entry[1] < time.monotonic():
            return None
        return entry[0]

    def put(self, text: str, principal: Principal) -> None:
        if self.ttl_seconds <= 0:
            return
        if len(self._entries) >= self.max_entries:
            self._entries.clear()
        self._entries[hash_secret(text)] = (principal, time.monotonic() + self.ttl_seconds)
