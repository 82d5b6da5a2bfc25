"""The migration runner: up from empty, no-op re-run, refusal of edited files, concurrency."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
from pathlib import Path

import asyncpg
import pytest

from chainworker.db.errors import DatabaseError
from chainworker.db.migrate import (
    MigrationError,
    load_migrations,
    migrate,
    migration_status,
    migrations_dir,
)

ALL = [migration.name for migration in load_migrations(migrations_dir())]


async def recorded(dsn: str) -> list[str]:
    conn = await asyncpg.connect(dsn)
    try:
        return [
            r["name"] for r in await conn.fetch("SELECT name FROM schema_migrations ORDER BY 1")
        ]
    finally:
        await conn.close()


def test_migrations_dir_is_the_repository_copy():
    assert migrations_dir() == Path(__file__).resolve().parents[2] / "migrations"
    assert ALL[0] == "001_cross_service_tables.sql" and len(ALL) >= 12
    assert issubclass(MigrationError, DatabaseError)


async def test_up_from_empty_then_no_op(empty_db):
    pending = await migration_status(empty_db.admin_dsn)
    assert [s.name for s in pending] == ALL and all(s.applied_at is None for s in pending)
    assert await migrate(empty_db.admin_dsn) == ALL
    assert await migrate(empty_db.admin_dsn) == []
    states = await migration_status(empty_db.admin_dsn)
    assert all(s.applied_at is not None and not s.changed for s in states)
    assert await recorded(empty_db.admin_dsn) == ALL


async def test_concurrent_runs_apply_once(empty_db):
    results = await asyncio.gather(migrate(empty_db.admin_dsn), migrate(empty_db.admin_dsn))
    assert sorted(results, key=len) == [[], ALL]
    assert await recorded(empty_db.admin_dsn) == ALL


@pytest.fixture
def own_copy(tmp_path: Path) -> Path:
    directory = tmp_path / "migrations"
    shutil.copytree(migrations_dir(), directory)
    return directory


async def test_edited_migration_is_refused_before_anything_runs(empty_db, own_copy: Path):
    assert await migrate(empty_db.admin_dsn, own_copy) == ALL
    edited = own_copy / "003_ticket_scans.sql"
    edited.write_text(edited.read_text() + "\n-- edited\n")
    (own_copy / "900_new.sql").write_text("CREATE TABLE must_not_exist (id int);")
    with pytest.raises(MigrationError, match=r"003_ticket_scans\.sql was changed"):
        await migrate(empty_db.admin_dsn, own_copy)
    assert "900_new.sql" not in await recorded(empty_db.admin_dsn)
    changed = {s.name: s for s in await migration_status(empty_db.admin_dsn, own_copy)}
    assert changed["003_ticket_scans.sql"].changed
    assert changed["900_new.sql"].applied_at is None


async def test_failing_migration_rolls_back_alone(empty_db, own_copy: Path):
    (own_copy / "900_good.sql").write_text("CREATE TABLE runner_good (id int);")
    (own_copy / "901_bad.sql").write_text("CREATE TABLE runner_bad (id int); SELECT 1/0;")
    with pytest.raises(MigrationError, match=r"901_bad\.sql failed"):
        await migrate(empty_db.admin_dsn, own_copy)
    names = await recorded(empty_db.admin_dsn)
    assert "900_good.sql" in names and "901_bad.sql" not in names
    conn = await asyncpg.connect(empty_db.admin_dsn)
    try:
        assert await conn.fetchval("SELECT to_regclass('runner_bad')") is None
        owner = await conn.fetchval(
            "SELECT pg_get_userbyid(relowner) FROM pg_class WHERE relname = 'runner_good'"
        )
        assert owner == "chainworker_owner"
    finally:
        await conn.close()


def run_cli(*args: str, database_url: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": database_url, "DATABASE_ADMIN_URL": database_url}
    return subprocess.run(
        [sys.executable, "-m", "chainworker", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


async def test_cli_migrate_and_status(empty_db):
    first = await asyncio.to_thread(run_cli, "migrate", database_url=empty_db.admin_dsn)
    assert first.returncode == 0, first.stderr
    assert f"applied {ALL[0]}" in first.stdout
    again = await asyncio.to_thread(run_cli, "migrate", database_url=empty_db.admin_dsn)
    assert again.returncode == 0 and "up to date" in again.stdout
    status = await asyncio.to_thread(run_cli, "migrate", "status", database_url=empty_db.admin_dsn)
    assert status.returncode == 0 and "001_cross_service_tables.sql" in status.stdout
    assert "applied" in status.stdout and "pending" not in status.stdout
    broken = await asyncio.to_thread(
        run_cli, "migrate", database_url="postgresql://nobody@127.0.0.1:1/none"
    )
    assert broken.returncode == 2
    assert (
        broken.stderr.startswith("chainworker: cannot connect") and broken.stderr.count("\n") == 1
    )
