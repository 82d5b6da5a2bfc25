from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
from arq.connections import ArqRedis, RedisSettings

from chainworker.jobs.codec import create_arq_pool
from chainworker.localnet.process import LocalnetProcess
from tests.conftest import TestDatabase
from tests.helpers import Stack


@pytest.fixture
def stack(
    fresh_db: TestDatabase, redis_url: str, localnet_faults: LocalnetProcess, tmp_path: Path
) -> Stack:
    return Stack(db=fresh_db, redis_url=redis_url, rpc_urls=localnet_faults.rpc_url,
                 state_dir=tmp_path / "state")


@pytest.fixture
def admin(admin_conn: asyncpg.Connection) -> asyncpg.Connection:
    """A superuser connection to the test's database, for assertions across tenants."""
    return admin_conn


@pytest.fixture
async def arq(redis_url: str) -> AsyncIterator[ArqRedis]:
    """An Arq client on the tests' Redis."""
    pool = await create_arq_pool(RedisSettings.from_dsn(redis_url))
    try:
        yield pool
    finally:
        await pool.aclose()
