"""Whether row-level security binds the runtime role: checked by every process at start.

A superuser, a role with BYPASSRLS, or the owner of a tenant table (or a member of
that owner) is not bound by the tenant policies, so tenant B could reach tenant A's
tickets and nothing would say so. Such a `DATABASE_URL` is refused with one line.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from chainworker.db.errors import DatabaseError

if TYPE_CHECKING:
    from chainworker.db.pool import Connection

APP_ROLE = "chainworker_app"

# Tenant tables: those under row-level security or carrying a tenant_id, in the schemas
# on the search path. Owning one (directly or through membership) exempts a role from RLS.
_ROLE = """
SELECT r.rolname::text AS role, r.rolsuper AS superuser, r.rolbypassrls AS bypass_rls,
       (SELECT array_agg(DISTINCT c.relname::text ORDER BY c.relname::text)
          FROM pg_class c
         WHERE c.relkind IN ('r', 'p')
           AND c.relnamespace = ANY (current_schemas(false)::regnamespace[])
           AND (c.relrowsecurity OR EXISTS (
                   SELECT 1 FROM pg_attribute a
                    WHERE a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped))
           AND pg_has_role(current_user, c.relowner, 'USAGE')) AS owned
  FROM pg_roles r
 WHERE r.rolname = current_user
"""


@dataclass(frozen=True, slots=True)
class RuntimeRole:
    role: str
    superuser: bool
    bypass_rls: bool
    owned_tenant_tables: tuple[str, ...]

    @property
    def refusal(self) -> str | None:
        """Why this role must not run chainworker; None when RLS binds it."""
        if self.superuser:
            why = "a superuser"
        elif self.bypass_rls:
            why = "a role with BYPASSRLS"
        elif self.owned_tenant_tables:
            shown = ", ".join(self.owned_tenant_tables[:3])
            more = len(self.owned_tenant_tables) - 3
            why = f"the owner of tenant tables ({shown}{f' and {more} more' if more > 0 else ''})"
        else:
            return None
        return (
            f'DATABASE_URL connects as role "{self.role}", {why}: row-level security does not '
            "bind it, so tenants would not be kept apart. Run migrations as the owner "
            f"(DATABASE_ADMIN_URL) and chainworker as {APP_ROLE} (DATABASE_URL)."
        )


async def runtime_role(conn: Connection) -> RuntimeRole:
    row = await conn.fetchrow(_ROLE)
    assert row is not None  # current_user always has a pg_roles row
    return RuntimeRole(
        role=row["role"],
        superuser=bool(row["superuser"]),
        bypass_rls=bool(row["bypass_rls"]),
        owned_tenant_tables=tuple(row["owned"] or ()),
    )


async def require_rls_bound(conn: Connection) -> None:
    """Raise DatabaseError (one line: the role, why, the fix) unless RLS binds this role."""
    refusal = (await runtime_role(conn)).refusal
    if refusal is not None:
        raise DatabaseError(refusal)


async def check_runtime_dsn(dsn: str) -> None:
    """Connect once and `require_rls_bound`: the check a command runs before it starts serving."""
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        await require_rls_bound(conn)
    finally:
        await conn.close()
