"""Applies the versioned SQL in `migrations/` to a database, once each, in order.

Every file runs in its own transaction as the owner role (`SET LOCAL ROLE
chainworker_owner`), so the owner owns every object and the runtime role
(`chainworker_app`) only gets the privileges the migrations grant it. Applied
files are recorded in `schema_migrations` with their sha256 checksum; a file
changed after it was applied is refused before anything runs. A session
advisory lock serializes concurrent runs against one database.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import asyncpg

from chainworker.db.errors import DatabaseError

OWNER_ROLE = "chainworker_owner"
APP_ROLE = "chainworker_app"
BOOKKEEPING_TABLE = "schema_migrations"
# pg_advisory_lock key: the first 8 bytes of sha256("chainworker.migrate"), signed.
ADVISORY_LOCK_KEY = int.from_bytes(
    hashlib.sha256(b"chainworker.migrate").digest()[:8], "big", signed=True
)
_FILE_NAME = re.compile(r"^\d{3}_[a-z0-9_]+\.sql$")


class MigrationError(DatabaseError):
    """A migration cannot be applied, or the applied history disagrees with the files."""


@dataclass(frozen=True)
class Migration:
    name: str
    sql: str
    checksum: str


@dataclass(frozen=True)
class MigrationState:
    name: str
    checksum: str
    applied_at: datetime | None  # None: pending
    changed: bool  # applied, but the file's checksum differs from the recorded one


def migrations_dir() -> Path:
    """The repository's `migrations/` beside the source tree, else the packaged copy."""
    repo_copy = Path(__file__).resolve().parents[3] / "migrations"
    if repo_copy.is_dir():
        return repo_copy
    return Path(__file__).resolve().parents[1] / "_migrations"


def load_migrations(directory: Path) -> list[Migration]:
    """The migration files of `directory` (`NNN_name.sql`), in name order."""
    if not directory.is_dir():
        raise MigrationError(f"migrations directory {directory} does not exist")
    migrations = []
    for path in sorted(directory.iterdir()):
        if not _FILE_NAME.match(path.name):
            continue
        data = path.read_bytes()
        migrations.append(
            Migration(path.name, data.decode("utf-8"), hashlib.sha256(data).hexdigest())
        )
    return migrations


async def migrate(admin_dsn: str, directory: Path | None = None) -> list[str]:
    """Apply every pending migration; returns the names applied (empty: up to date)."""
    migrations = load_migrations(directory or migrations_dir())
    conn = await _connect(admin_dsn)
    try:
        await conn.execute("SELECT pg_advisory_lock($1)", ADVISORY_LOCK_KEY)
        try:
            await _ensure_roles(conn)
            await _ensure_bookkeeping(conn)
            recorded = await _recorded(conn)
            _refuse_changed(migrations, recorded)
            applied = []
            for migration in migrations:
                if migration.name in recorded:
                    continue
                await _apply(conn, migration)
                applied.append(migration.name)
            return applied
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", ADVISORY_LOCK_KEY)
    finally:
        await conn.close()


async def migration_status(admin_dsn: str, directory: Path | None = None) -> list[MigrationState]:
    """Every migration file (and any recorded one whose file is gone), applied or pending."""
    migrations = load_migrations(directory or migrations_dir())
    conn = await _connect(admin_dsn)
    try:
        exists = await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", BOOKKEEPING_TABLE)
        recorded = await _recorded(conn) if exists else {}
    finally:
        await conn.close()
    states = []
    for migration in migrations:
        row = recorded.pop(migration.name, None)
        states.append(
            MigrationState(
                name=migration.name,
                checksum=migration.checksum,
                applied_at=row[1] if row else None,
                changed=row is not None and row[0] != migration.checksum,
            )
        )
    for name, (checksum, applied_at) in sorted(recorded.items()):
        states.append(MigrationState(name, checksum, applied_at, changed=False))
    return states


async def _connect(admin_dsn: str) -> asyncpg.Connection:
    try:
        return await asyncpg.connect(admin_dsn)
    except (OSError, asyncpg.PostgresError) as error:
        raise MigrationError(f"cannot connect to the database: {error}") from error


async def _ensure_roles(conn: asyncpg.Connection) -> None:
    """Create the owner and runtime roles when missing, and let this session act as owner."""
    can_create = await conn.fetchval(
        "SELECT rolsuper OR rolcreaterole FROM pg_roles WHERE rolname = current_user"
    )
    statements = {
        OWNER_ROLE: f"CREATE ROLE {OWNER_ROLE} NOLOGIN",
        APP_ROLE: f"CREATE ROLE {APP_ROLE} LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE",
    }
    for role, statement in statements.items():
        if await conn.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", role):
            continue
        if not can_create:
            raise MigrationError(
                f"role {role} does not exist and the migration user cannot create it"
            )
        try:
            await conn.execute(statement)
        except (asyncpg.DuplicateObjectError, asyncpg.UniqueViolationError):
            # Created meanwhile by a run on another database of this server: roles are
            # cluster-wide, the advisory lock is per database.
            pass
    member = "SELECT pg_has_role(current_user, $1, 'MEMBER')"
    if not await conn.fetchval(member, OWNER_ROLE):
        try:
            await conn.execute(f"GRANT {OWNER_ROLE} TO current_user")
        except asyncpg.PostgresError as error:
            if not await conn.fetchval(member, OWNER_ROLE):  # not a concurrent grant
                raise MigrationError(
                    f"cannot make the migration user a member of {OWNER_ROLE}: {error}"
                ) from error
    try:
        await conn.execute(f"GRANT CREATE, USAGE ON SCHEMA public TO {OWNER_ROLE}")
        await conn.execute(f"GRANT USAGE ON SCHEMA public TO {APP_ROLE}")
    except asyncpg.PostgresError as error:
        raise MigrationError(f"cannot grant the roles the public schema: {error}") from error


async def _ensure_bookkeeping(conn: asyncpg.Connection) -> None:
    async with conn.transaction():
        await conn.execute(f"SET LOCAL ROLE {OWNER_ROLE}")
        await conn.execute(
            f"""CREATE TABLE IF NOT EXISTS {BOOKKEEPING_TABLE} (
                    name        text PRIMARY KEY,
                    checksum    text NOT NULL,
                    applied_at  timestamptz NOT NULL DEFAULT now())"""
        )
        # The runtime role may read which migrations are applied, never change them.
        await conn.execute(f"REVOKE ALL ON {BOOKKEEPING_TABLE} FROM {APP_ROLE}")
        await conn.execute(f"GRANT SELECT ON {BOOKKEEPING_TABLE} TO {APP_ROLE}")


async def _recorded(conn: asyncpg.Connection) -> dict[str, tuple[str, datetime]]:
    rows = await conn.fetch(
        f"SELECT name, checksum, applied_at FROM {BOOKKEEPING_TABLE}"  # noqa: S608 - constant
    )
    return {row["name"]: (row["checksum"], row["applied_at"]) for row in rows}


def _refuse_changed(migrations: list[Migration], recorded: dict[str, tuple[str, datetime]]) -> None:
    for migration in migrations:
        row = recorded.get(migration.name)
        if row is not None and row[0] != migration.checksum:
            raise MigrationError(
                f"migration {migration.name} was changed after it was applied "
                f"(recorded sha256 {row[0][:12]}, file {migration.checksum[:12]}); "
                "restore the file and put the change in a new migration"
            )


async def _apply(conn: asyncpg.Connection, migration: Migration) -> None:
    try:
        async with conn.transaction():
            await conn.execute(f"SET LOCAL ROLE {OWNER_ROLE}")
            await conn.execute(migration.sql)
            await conn.execute(
                f"INSERT INTO {BOOKKEEPING_TABLE} (name, checksum) VALUES ($1, $2)",  # noqa: S608
                migration.name,
                migration.checksum,
            )
    except asyncpg.PostgresError as error:
        raise MigrationError(f"migration {migration.name} failed: {error}") from error
