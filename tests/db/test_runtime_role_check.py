"""A DATABASE_URL that row-level security does not bind is refused at start, in one line.

What someone with a local PostgreSQL does first is point DATABASE_URL at the superuser;
then every tenant would see every other's tickets. Every command that uses the runtime
role refuses it, and a role with BYPASSRLS, and a member of the tables' owner.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from chainworker.config import load_settings
from chainworker.db.errors import DatabaseError
from chainworker.db.pool import create_pool
from chainworker.localnet.process import LocalnetProcess
from tests.conftest import TestDatabase
from tests.helpers import Stack

BYPASS_ROLE = "cw_test_bypass_rls"
OWNER_MEMBER_ROLE = "cw_test_owner_member"
TENANT = str(uuid.uuid4())

COMMANDS = {
    "worker": ["worker"],
    "api": ["api", "--port", "1"],
    "enqueue": ["enqueue", "mint", "--tenant", TENANT, "--ticket", TENANT],
    "reconcile": ["reconcile"],
    "holders": ["reconcile", "holders"],
    "tx show": ["tx", "show", TENANT],
    "token create": ["token", "create", "--tenant", TENANT, "--name", "x"],
}


@pytest.fixture(scope="module")
async def roles(pg) -> AsyncIterator[None]:
    conn = await asyncpg.connect(pg.admin_dsn("postgres"))
    try:
        for role, options in ((BYPASS_ROLE, "BYPASSRLS"), (OWNER_MEMBER_ROLE, "")):
            await conn.execute(
                f"""DO $$ BEGIN
                        IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{role}') THEN
                            CREATE ROLE {role} LOGIN {options};
                        END IF;
                    EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
                    END $$"""  # noqa: S608 - constant role names, no input
            )
        await conn.execute(f"GRANT chainworker_owner TO {OWNER_MEMBER_ROLE}")
        yield
    finally:
        await conn.close()


def _run(stack: Stack, dsn: str, args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "chainworker", *args],
        env=stack.env(DATABASE_URL=dsn, SOLANA_RPC_URLS="http://127.0.0.1:9"),
        capture_output=True, text=True, timeout=60,
    )


def _dsn(db: TestDatabase, role: str) -> str:
    return db.app_dsn.replace("chainworker_app@", f"{role}@", 1)


def _assert_refused(result: subprocess.CompletedProcess[str], role: str, why: str) -> None:
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1, result.stderr
    assert f'role "{role}"' in lines[0] and why in lines[0]
    assert "DATABASE_ADMIN_URL" in lines[0] and "chainworker_app (DATABASE_URL)" in lines[0]


@pytest.mark.parametrize("command", sorted(COMMANDS))
async def test_every_command_refuses_a_superuser_url(
    command: str, fresh_db: TestDatabase, redis_url: str, tmp_path: Path
) -> None:
    stack = Stack(fresh_db, redis_url, "http://127.0.0.1:9", tmp_path / "state")
    superuser = fresh_db.admin_dsn
    result = _run(stack, superuser, COMMANDS[command])
    _assert_refused(result, "postgres", "a superuser")
    # nothing was written on the way
    conn = await asyncpg.connect(fresh_db.admin_dsn)
    try:
        assert await conn.fetchval("SELECT count(*) FROM chain_requests") == 0
        assert await conn.fetchval("SELECT count(*) FROM api_tokens") == 0
    finally:
        await conn.close()


@pytest.mark.parametrize("command", ["worker", "enqueue"])
@pytest.mark.parametrize(
    ("role", "why"), [(BYPASS_ROLE, "BYPASSRLS"), (OWNER_MEMBER_ROLE, "the owner of tenant tables")]
)
async def test_bypassrls_and_owner_roles_are_refused(
    command: str, role: str, why: str, roles: None, fresh_db: TestDatabase, redis_url: str,
    tmp_path: Path,
) -> None:
    stack = Stack(fresh_db, redis_url, "http://127.0.0.1:9", tmp_path / "state")
    _assert_refused(_run(stack, _dsn(fresh_db, role), COMMANDS[command]), role, why)


async def test_the_pool_itself_refuses_a_superuser(
    fresh_db: TestDatabase, localnet: LocalnetProcess
) -> None:
    settings = load_settings(solana_rpc_urls=localnet.rpc_url)
    with pytest.raises(DatabaseError, match='role "postgres", a superuser'):
        await create_pool(fresh_db.admin_dsn, settings)
    pool = await create_pool(fresh_db.app_dsn, settings)  # the runtime role is accepted
    await pool.close()
