"""Shared fixtures: real PostgreSQL and Redis, found the way every command finds them.

Each run creates its own databases and drops them: one template migrated once,
then a fresh clone per test that asks for one.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest
from redis.asyncio import Redis

from chainworker import services
from chainworker.config import Settings, load_settings
from chainworker.db.migrate import migrate
from chainworker.jobs.enqueue import drop_queue

pytest_plugins = ["tests.plugins.localnet", "tests.plugins.softhsm"]

REPO_ROOT = Path(__file__).resolve().parents[1]
RUN_ID = uuid.uuid4().hex[:10]
QUEUE_PREFIX = f"cwtest:{RUN_ID}:queue:"


# The ticket service's own role, for the schema tests: bound by row-level security like
# chainworker_app, but with the data privileges of the whole seed schema (chainworker_app
# has only what chainworker uses). It exists only in test databases.
SERVICE_ROLE = "cw_test_ticket_service"


@dataclass(frozen=True)
class TestDatabase:
    __test__ = False  # not a test class

    name: str
    admin_dsn: str
    app_dsn: str
    service_dsn: str


@pytest.fixture(scope="session")
def settings() -> Settings:
    return load_settings(state_dir=REPO_ROOT / ".chainworker")


@pytest.fixture(scope="session")
async def pg(settings: Settings) -> services.PgServer:
    server, origin = await services.find_postgres_server(settings)
    print(f"\ntests use {origin} PostgreSQL at {server.host}:{server.port}")
    return server


async def _admin_execute(pg: services.PgServer, sql: str) -> None:
    conn = await asyncpg.connect(pg.admin_dsn("postgres"))
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def _create_database(pg: services.PgServer, name: str, template: str | None = None) -> None:
    # Identifiers cannot be bound; these names are generated here, never from input.
    clause = f' TEMPLATE "{template}"' if template else ""
    await _admin_execute(pg, f'CREATE DATABASE "{name}"{clause}')


async def _drop_database(pg: services.PgServer, name: str) -> None:
    await _admin_execute(pg, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _database(pg: services.PgServer, name: str) -> TestDatabase:
    return TestDatabase(
        name=name, admin_dsn=pg.admin_dsn(name), app_dsn=pg.app_dsn(name),
        service_dsn=pg.dsn(SERVICE_ROLE, name),
    )


async def _grant_service_role(admin_dsn: str) -> None:
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(
            f"""DO $$ BEGIN
                    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{SERVICE_ROLE}') THEN
                        CREATE ROLE {SERVICE_ROLE} LOGIN NOSUPERUSER NOBYPASSRLS;
                    END IF;
                EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
                END $$;
                GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public
                    TO {SERVICE_ROLE};
                GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {SERVICE_ROLE};
                GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA public TO {SERVICE_ROLE};"""  # noqa: S608
        )
    finally:
        await conn.close()


@pytest.fixture(scope="session")
async def template_db(pg: services.PgServer) -> AsyncIterator[str]:
    name = f"cw_tpl_{RUN_ID}"
    await _create_database(pg, name)
    try:
        await migrate(pg.admin_dsn(name))
        await _grant_service_role(pg.admin_dsn(name))
        yield name
    finally:
        await _drop_database(pg, name)


@pytest.fixture
async def fresh_db(pg: services.PgServer, template_db: str) -> AsyncIterator[TestDatabase]:
    name = f"cw_t_{RUN_ID}_{uuid.uuid4().hex[:8]}"
    await _create_database(pg, name, template=template_db)
    try:
        yield _database(pg, name)
    finally:
        await _drop_database(pg, name)


@pytest.fixture(scope="module")
async def module_db(pg: services.PgServer, template_db: str) -> AsyncIterator[TestDatabase]:
    """One migrated database shared by a module's tests (for suites that isolate by tenant)."""
    name = f"cw_m_{RUN_ID}_{uuid.uuid4().hex[:8]}"
    await _create_database(pg, name, template=template_db)
    try:
        yield _database(pg, name)
    finally:
        await _drop_database(pg, name)


@pytest.fixture
async def empty_db(pg: services.PgServer) -> AsyncIterator[TestDatabase]:
    name = f"cw_e_{RUN_ID}_{uuid.uuid4().hex[:8]}"
    await _create_database(pg, name)
    try:
        yield _database(pg, name)
    finally:
        await _drop_database(pg, name)


@pytest.fixture
async def admin_conn(fresh_db: TestDatabase) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(fresh_db.admin_dsn)
    try:
        yield conn
    finally:
        await conn.close()


@pytest.fixture
async def app_conn(fresh_db: TestDatabase) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(fresh_db.app_dsn)
    try:
        yield conn
    finally:
        await conn.close()


def own_queue_name(purpose: str) -> str:
    """An Arq queue name of this run's own; the run deletes its queues and jobs at the end."""
    return f"{QUEUE_PREFIX}{purpose}:{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="session")
async def redis_url(settings: Settings) -> AsyncIterator[str]:
    target = await services.resolve_redis(settings)
    print(f"\ntests use {target.origin} Redis at {target.url}")
    yield target.url
    client = Redis.from_url(target.url)
    try:
        async for queue in client.scan_iter(match=f"{QUEUE_PREFIX}*", _type="zset"):
            await drop_queue(client, queue.decode())
        # The dead letters workers kept beside those queues.
        async for dead in client.scan_iter(match=f"{QUEUE_PREFIX}*:dead", _type="list"):
            await client.delete(dead)
    finally:
        await client.aclose()


@pytest.fixture
def key_prefix() -> Iterator[str]:
    """A Redis key prefix no other test or run uses: tests touch only their own keys."""
    yield f"cwtest:{RUN_ID}:{uuid.uuid4().hex[:8]}:"
