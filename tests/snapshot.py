"""What bad-input tests compare before and after: a digest of every table, read as the owner.

`table_digests(conn)` covers every row of every table of the schema; with a tenant, only
that tenant's rows (tables without a tenant_id are then left out). Two digests differ in
exactly the tables whose rows changed, so a test can say which tables a valid input may
touch and that a bad one touched none, and a dropped table makes the read fail.
"""

from __future__ import annotations

from uuid import UUID

import asyncpg

_TABLES = """
    SELECT c.relname AS name,
           EXISTS (SELECT 1 FROM pg_attribute a
                    WHERE a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped)
               AS has_tenant
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND c.relname <> 'schema_migrations'
     ORDER BY c.relname
"""

# Tables every tenant-less digest must find: the ones bad input would most like to reach.
MAIN_TABLES = (
    "tenants", "users", "events", "tickets", "ticket_transfers", "chain_requests",
    "pending_transactions", "outbox", "api_tokens", "blockchain_sync_log",
    "ticket_state_history", "multisig_approval_requests", "idempotency_keys", "wallets",
)


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


async def table_digests(conn: asyncpg.Connection, tenant_id: UUID | None = None) -> dict[str, str]:
    """Table -> "row count:md5 of its rows" (of one tenant's rows when `tenant_id` is given)."""
    parts: list[str] = []
    for row in await conn.fetch(_TABLES):
        name = row["name"]
        if tenant_id is None:
            where = ""
        elif name == "tenants":
            where = " WHERE t.id = $1"
        elif row["has_tenant"]:
            where = " WHERE t.tenant_id = $1"
        else:
            continue
        # Names come from the catalog, never from input; the tenant is bound.
        literal = "'" + name.replace("'", "''") + "'"
        rows_digest = "md5(coalesce(string_agg(md5(t::text), '' ORDER BY md5(t::text)), ''))"
        parts.append(
            f"SELECT {literal} AS name, count(*)::text || ':' || {rows_digest} AS digest "  # noqa: S608
            f"FROM {_quoted(name)} t{where}"
        )
    sql = " UNION ALL ".join(parts)
    rows = await (conn.fetch(sql, tenant_id) if tenant_id is not None else conn.fetch(sql))
    digests = {row["name"]: row["digest"] for row in rows}
    if tenant_id is None:
        missing = [name for name in MAIN_TABLES if name not in digests]
        assert not missing, f"tables gone: {missing}"
    return digests


def changed(before: dict[str, str], after: dict[str, str]) -> set[str]:
    """The tables whose rows differ (or that appeared or went)."""
    return {name for name in before.keys() | after.keys() if before.get(name) != after.get(name)}
