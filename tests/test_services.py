"""The embedded path: PostgreSQL and Valkey started from the PyPI packages in a fresh directory.

Runs on every machine, even one with servers of its own, so the fallback never rots.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import asyncpg
import pytest
from redis.asyncio import Redis

from chainworker import services
from chainworker.db.migrate import migrate


@pytest.mark.slow
async def test_embedded_postgres_and_valkey_round_trip(tmp_path: Path) -> None:
    pg_dir, valkey_dir = tmp_path / "postgres", tmp_path / "valkey"
    try:
        server = await asyncio.to_thread(services.start_embedded_postgres, pg_dir)
        await services.ensure_database(server, "chainworker")
        applied = await migrate(server.admin_dsn("chainworker"))
        assert applied, "a new database gets every migration"
        assert await migrate(server.admin_dsn("chainworker")) == []

        owner = await asyncpg.connect(server.admin_dsn("chainworker"))
        try:
            tenant = await owner.fetchval(
                "INSERT INTO tenants (name) VALUES ('embedded') RETURNING id"
            )
        finally:
            await owner.close()
        conn = await asyncpg.connect(server.app_dsn("chainworker"))
        try:
            is_super = await conn.fetchval(
                "SELECT rolsuper FROM pg_roles WHERE rolname = current_user"
            )
            assert is_super is False
            async with conn.transaction():
                await conn.execute("SELECT set_tenant_context($1)", tenant)
                await conn.execute(
                    "INSERT INTO blockchain_sync_log (tenant_id, entity_type, operation, status) "
                    "VALUES ($1, 'round_trip', 'verify', 'confirmed')",
                    tenant,
                )
                count = await conn.fetchval("SELECT count(*) FROM blockchain_sync_log")
            assert count == 1
        finally:
            await conn.close()

        # A second start finds the running server instead of starting another.
        again = await asyncio.to_thread(services.start_embedded_postgres, pg_dir)
        assert again == server
        # Stopped and started again by the same process, it answers again.
        assert await asyncio.to_thread(services.stop_embedded_postgres, pg_dir)
        restarted = await asyncio.to_thread(services.start_embedded_postgres, pg_dir)
        conn = await asyncpg.connect(restarted.admin_dsn("chainworker"))
        try:
            assert await conn.fetchval("SELECT 1") == 1
        finally:
            await conn.close()

        url = await asyncio.to_thread(services.start_embedded_valkey, valkey_dir)
        assert url == await asyncio.to_thread(services.start_embedded_valkey, valkey_dir)
        client = Redis.from_url(url)
        try:
            await client.set("round-trip", "yes")
            assert await client.get("round-trip") == b"yes"
        finally:
            await client.aclose()
    finally:
        services.stop_embedded_postgres(pg_dir)
        services.stop_embedded_valkey(valkey_dir)
    assert not await services.redis_answers(url)


def test_pg_server_dsn_forms() -> None:
    tcp = services.PgServer(host="127.0.0.1", port=5432)
    assert tcp.app_dsn("db") == "postgresql://chainworker_app@127.0.0.1:5432/db"
    sock = services.PgServer(host="/var/run/pg", port=5433)
    assert sock.admin_dsn("db") == "postgresql://postgres@/db?host=/var/run/pg&port=5433"


def test_targets_show_their_urls_without_credentials() -> None:
    pg = services.PostgresTarget(
        admin_dsn="postgresql://owner:OWNERPASSWORD@db.internal:5432/cw",
        app_dsn="postgresql://app:APPPASSWORD@db.internal:5432/cw?password=QUERYPASSWORD",
        origin="configured",
        server=None,
    )
    redis = services.RedisTarget("redis://default:REDISPASSWORD@cache.internal:6379/0", "local")
    assert repr(pg) == "PostgresTarget(postgresql://db.internal:5432, origin='configured')"
    assert str(redis) == "RedisTarget(redis://cache.internal:6379, origin='local')"


def test_a_valkey_stopped_by_the_process_that_started_it_is_reaped(tmp_path: Path) -> None:
    """Stopped, it is gone at once: left a zombie, signal 0 still found it, and each stop
    waited out its whole timeout (the tests that stop and restart a server)."""
    services.start_embedded_valkey(tmp_path)
    pid = int((tmp_path / "valkey.state").read_text().split()[0])
    assert services.stop_embedded_valkey(tmp_path)
    with pytest.raises(ChildProcessError):  # nothing left to reap
        os.waitpid(pid, os.WNOHANG)
