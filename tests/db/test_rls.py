"""Row-level security: one tenant never reaches another's rows.

The policies are tested as the ticket service's role (every data privilege, bound by RLS);
the runtime role's own privileges in tests/db/test_privileges.py.
"""

from __future__ import annotations

import asyncpg
import pytest

from tests.db.conftest import Worlds
from tests.db.world import ROWS, primary_key, tenant_tables

SEEDED_TABLES = [table for table, _ in ROWS]
# Rows that live only inside the transaction that writes them (folded at its commit,
# migration 117): nothing to seed, and their isolation is checked with the others'.
TRANSIENT_TABLES = {"chainworker_spend_unfolded"}


class Rollback(Exception):
    """Raised to roll a test transaction back."""


async def in_tenant(conn: asyncpg.Connection, tenant_id, sql: str, *args):
    """Run one statement in a transaction whose tenant context is `tenant_id`, then roll back."""
    result = None
    try:
        async with conn.transaction():
            if tenant_id is not None:
                await conn.execute("SELECT set_tenant_context($1)", tenant_id)
            result = (
                await conn.fetch(sql, *args)
                if sql.lstrip().upper().startswith(("SELECT", "WITH")) or "RETURNING" in sql.upper()
                else await conn.execute(sql, *args)
            )
            raise Rollback
    except Rollback:
        pass
    return result


async def test_every_tenant_table_is_seeded_and_isolated(module_admin: asyncpg.Connection):
    tables = await tenant_tables(module_admin)
    missing = sorted(set(tables) - set(SEEDED_TABLES) - TRANSIENT_TABLES - {"tenants"})
    assert not missing, f"add a row for {missing} to tests/db/world.py ROWS"
    rows = await module_admin.fetch(
        """SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity,
                  EXISTS (SELECT 1 FROM pg_policy p WHERE p.polrelid = c.oid
                           AND p.polname = c.relname || '_tenant_isolation') AS has_policy
             FROM pg_class c WHERE c.relname = ANY($1::text[])
              AND c.relnamespace = 'public'::regnamespace""",
        tables,
    )
    assert len(rows) == len(tables) >= 35
    for row in rows:
        assert row["relrowsecurity"], row["relname"]
        assert not row["relforcerowsecurity"], row["relname"]
        assert row["has_policy"], row["relname"]


async def test_runtime_role_is_bound_by_rls(module_app: asyncpg.Connection):
    role = await module_app.fetchrow(
        """SELECT r.rolname, r.rolsuper, r.rolbypassrls,
                  pg_has_role(current_user, 'chainworker_owner', 'MEMBER') AS owner_member
             FROM pg_roles r WHERE r.rolname = current_user"""
    )
    assert role["rolname"] == "chainworker_app"
    assert not role["rolsuper"] and not role["rolbypassrls"] and not role["owner_member"]
    check = await module_app.fetchrow("SELECT * FROM verify_rls_role()")
    assert check["rls_binds"] and not check["owns_tenant_tables"]
    owners = await module_app.fetch(
        """SELECT DISTINCT pg_get_userbyid(relowner) AS owner FROM pg_class
            WHERE relnamespace = 'public'::regnamespace AND relkind IN ('r', 'S', 'v')"""
    )
    assert {row["owner"] for row in owners} == {"chainworker_owner"}


async def test_runtime_role_cannot_change_migration_history(module_app: asyncpg.Connection):
    for statement in ("SELECT count(*) FROM schema_migrations", "DELETE FROM schema_migrations"):
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await module_app.execute(statement)


@pytest.mark.parametrize("table", SEEDED_TABLES)
async def test_no_tenant_context_sees_nothing(table, worlds: Worlds, module_service, module_admin):
    if await module_admin.fetchval("SELECT to_regclass($1)", table) is None:
        pytest.skip(f"{table} is not part of this schema")
    assert await module_admin.fetchval(f"SELECT count(*) FROM {table}") >= 2  # noqa: S608
    rows = await in_tenant(module_service, None, f"SELECT count(*) AS n FROM {table}")  # noqa: S608
    assert rows[0]["n"] == 0


@pytest.mark.parametrize("table", SEEDED_TABLES)
async def test_tenant_cannot_reach_other_tenant(
    table, worlds: Worlds, module_service, module_admin
):
    if await module_admin.fetchval("SELECT to_regclass($1)", table) is None:
        pytest.skip(f"{table} is not part of this schema")
    a, b = worlds.a["tenants"], worlds.b["tenants"]
    pk = await primary_key(module_admin, table)
    b_id = worlds.b[table]

    # see: only A's rows, never B's
    seen = await in_tenant(module_service, a, f"SELECT tenant_id, {pk} AS pk FROM {table}")  # noqa: S608
    assert seen, f"tenant A sees none of its own {table} rows"
    assert {row["tenant_id"] for row in seen} == {a}
    assert b_id not in {row["pk"] for row in seen}

    # update / delete B's row: no row matches
    touch = f"UPDATE {table} SET tenant_id = tenant_id WHERE {pk} = $1"  # noqa: S608
    assert await in_tenant(module_service, a, touch, b_id) == "UPDATE 0"
    delete = f"DELETE FROM {table} WHERE {pk} = $1"  # noqa: S608
    assert await in_tenant(module_service, a, delete, b_id) == "DELETE 0"
    count = f"SELECT count(*) FROM {table} WHERE {pk} = $1"  # noqa: S608
    assert await module_admin.fetchval(count, b_id) == 1

    # move A's row into B: refused by the policy's WITH CHECK
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="row-level security"):
        await in_tenant(
            module_service,
            a,
            f"UPDATE {table} SET tenant_id = $1 WHERE {pk} = $2",  # noqa: S608
            b,
            worlds.a[table],
        )

    # insert a row for B while acting as A: refused
    as_json = f"SELECT row_to_json(t)::text FROM {table} t WHERE {pk} = $1"  # noqa: S608
    record = await module_admin.fetchval(as_json, b_id)
    columns = await module_admin.fetch(
        """SELECT attname FROM pg_attribute WHERE attrelid = $1::regclass AND attnum > 0
              AND NOT attisdropped AND attgenerated = '' AND attidentity <> 'a'""",
        table,
    )
    names = ", ".join(f'"{row["attname"]}"' for row in columns)
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="row-level security"):
        await in_tenant(
            module_service,
            a,
            f"INSERT INTO {table} ({names}) SELECT {names} "  # noqa: S608
            f"FROM json_populate_record(NULL::{table}, $1::json)",
            record,
        )
