"""A running API per test module: uvicorn in a thread on a free port, real Postgres,
Redis and the session localnet; tenants with tokens made through the real code paths."""

from __future__ import annotations

import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx
import pytest
import uvicorn
from arq.connections import ArqRedis, RedisSettings
from solders.pubkey import Pubkey

from chainworker.api.app import create_app
from chainworker.api.tokens import issue_token
from chainworker.config import Settings, load_settings
from chainworker.db import seed
from chainworker.jobs.codec import create_arq_pool
from chainworker.localnet.process import LocalnetProcess
from tests.conftest import TestDatabase, own_queue_name


@dataclass(frozen=True)
class RunningApi:
    url: str
    settings: Settings
    db: TestDatabase


@dataclass(frozen=True)
class Tenant:
    """A seeded tenant with a service token and one admin token per user."""

    seeded: seed.Seeded
    token: str
    admin_tokens: list[str]

    @property
    def id(self) -> uuid.UUID:
        return self.seeded.tenant_id

    def auth(self, token: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {token or self.token}"}

    def post_headers(self, key: str | None = None, token: str | None = None) -> dict[str, str]:
        return {**self.auth(token), "Idempotency-Key": key or uuid.uuid4().hex}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def api_settings(localnet: LocalnetProcess, tmp: Path, **overrides: object) -> Settings:
    return load_settings(
        state_dir=tmp,
        solana_rpc_urls=[localnet.rpc_url],
        queue_name=own_queue_name("api"),
        api_auth_cache_seconds=0,
        **overrides,
    )


@pytest.fixture(scope="module")
def running_api(
    module_db: TestDatabase,
    redis_url: str,
    localnet: LocalnetProcess,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[RunningApi]:
    settings = api_settings(localnet, tmp_path_factory.mktemp("api"))
    app = create_app(settings, app_dsn=module_db.app_dsn, redis_url=redis_url)
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, name="api-under-test", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the API did not start")
        time.sleep(0.02)
    try:
        yield RunningApi(f"http://127.0.0.1:{port}", settings, module_db)
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture(scope="module")
async def client(running_api: RunningApi) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=running_api.url, timeout=10) as http:
        yield http


@pytest.fixture(scope="module")
async def pool(module_db: TestDatabase) -> AsyncIterator[asyncpg.Pool]:
    the_pool = await asyncpg.create_pool(module_db.app_dsn, min_size=1, max_size=10)
    assert the_pool is not None
    yield the_pool
    await the_pool.close()


@pytest.fixture(scope="module")
async def admin(module_db: TestDatabase) -> AsyncIterator[asyncpg.Connection]:
    """The owner's connection: setting up states and asserting across tenants."""
    conn = await asyncpg.connect(module_db.admin_dsn)
    yield conn
    await conn.close()


@pytest.fixture(scope="module")
async def arq(redis_url: str) -> AsyncIterator[ArqRedis]:
    redis = await create_arq_pool(RedisSettings.from_dsn(redis_url))
    yield redis
    await redis.aclose()


async def new_tenant(
    pool: asyncpg.Pool, owner: asyncpg.Connection, *, tickets: int = 4, users: int = 3
) -> Tenant:
    """A seeded tenant (the ticket service's data, written as the owner) with its tokens."""
    seeded = await seed.seed_tenant(
        owner, tickets=tickets, users=users, tenant_name=f"t{uuid.uuid4().hex[:6]}"
    )
    service = await issue_token(pool, seeded.tenant_id, "ticket-service")
    admins = [
        await issue_token(pool, seeded.tenant_id, f"admin-{i}", is_admin=True, user_id=user)
        for i, user in enumerate(seeded.user_ids)
    ]
    return Tenant(seeded, service.token, [a.token for a in admins])


async def make_minted(admin: asyncpg.Connection, ticket_ids: list[uuid.UUID]) -> None:
    """Put tickets in the state a confirmed mint leaves (the worker's tests cover the mint)."""
    await admin.executemany(
        """UPDATE tickets SET status = 'minted', is_nft = true, minted_at = now(), token_mint = $2
            WHERE id = $1""",
        [(ticket_id, str(Pubkey.new_unique())) for ticket_id in ticket_ids],
    )


async def accepted_transfer(
    admin: asyncpg.Connection, ticket_id: uuid.UUID, to_user: uuid.UUID, status: str = "accepted"
) -> uuid.UUID:
    """A transfer of the ticket to `to_user`, as the ticket service records one."""
    transfer_id: uuid.UUID = await admin.fetchval(
        """INSERT INTO ticket_transfers (tenant_id, ticket_id, from_user_id, to_user_id, status)
           SELECT tenant_id, id, user_id, $2, $3 FROM tickets WHERE id = $1
           RETURNING id""",
        ticket_id,
        to_user,
        status,
    )
    return transfer_id
