"""The one asyncpg pool, and the per-transaction tenant context.

The tenant is set with `set_tenant_context()` inside each transaction (a
transaction-local setting), so a pooled connection never carries one tenant's
context into another's work.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Literal, TypeAlias
from uuid import UUID

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from chainworker.config import Settings
from chainworker.db import roles

ActorType = Literal["user", "system", "admin", "service"]
# What queries take: a plain connection or one borrowed from the pool.
Connection: TypeAlias = "asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]"

# lock_timeout: NULL keeps whatever the session has.
_SET_CONTEXT = """
SELECT set_tenant_context($1::uuid),
       set_config('app.actor_type', $2, true),
       set_config('app.status_change_reason', $3, true),
       set_config('app.status_change_source', $4, true),
       set_config('app.current_user_id', $5, true),
       set_config('lock_timeout', coalesce($6::text, current_setting('lock_timeout')), true)
"""


async def create_pool(
    dsn: str,
    settings: Settings,
    *,
    connection_class: type[asyncpg.Connection[asyncpg.Record]] = asyncpg.Connection,
) -> asyncpg.Pool:
    """The process's one pool, for the runtime role; refused (DatabaseError) unless RLS binds it."""
    pool = await asyncpg.create_pool(
        dsn,
        min_size=settings.db_pool_min_size,
        max_size=max(settings.db_pool_min_size, settings.db_pool_max_size),
        command_timeout=30,
        connection_class=connection_class,
    )
    assert pool is not None
    try:
        async with pool.acquire() as conn:
            await roles.require_rls_bound(conn)
    except BaseException:
        await pool.close()
        raise
    return pool


async def set_context(
    conn: Connection,
    tenant_id: UUID,
    *,
    actor_type: ActorType = "service",
    reason: str = "",
    source: str = "chainworker",
    user_id: UUID | None = None,
    lock_timeout_ms: int | None = None,
) -> None:
    """Set the tenant and the audit variables for the current transaction only.

    `lock_timeout_ms`: a statement waiting longer than this for a row lock fails with
    LockNotAvailableError instead of waiting on.
    """
    await conn.execute(
        _SET_CONTEXT, tenant_id, actor_type, reason, source, str(user_id) if user_id else "",
        None if lock_timeout_ms is None else f"{int(lock_timeout_ms)}ms",
    )


@asynccontextmanager
async def tenant_transaction(
    pool: asyncpg.Pool,
    tenant_id: UUID,
    *,
    actor_type: ActorType = "service",
    reason: str = "",
    source: str = "chainworker",
    user_id: UUID | None = None,
    lock_timeout_ms: int | None = None,
) -> AsyncIterator[Connection]:
    """A connection inside one transaction with the tenant context set."""
    async with pool.acquire() as conn, conn.transaction():
        await set_context(
            conn, tenant_id, actor_type=actor_type, reason=reason, source=source, user_id=user_id,
            lock_timeout_ms=lock_timeout_ms,
        )
        yield conn


async def ping(pool: asyncpg.Pool) -> None:
    """Raise unless the database answers."""
    await pool.fetchval("SELECT 1")
