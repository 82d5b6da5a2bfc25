"""The FastAPI application: `create_app(settings)`; OpenAPI at /openapi.json, docs at /docs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import asyncpg
from arq.connections import ArqRedis, RedisSettings
from fastapi import FastAPI

from chainworker import services
from chainworker.api import isolation, problems
from chainworker.api.body_limit import BodyLimit
from chainworker.api.context import ApiContext
from chainworker.api.routes import health, operations, revocations, status, wallets
from chainworker.api.tokens import TokenCache
from chainworker.chain.rpc import SolanaRpc
from chainworker.config import Settings
from chainworker.db.pool import create_pool
from chainworker.jobs import exporter
from chainworker.jobs.codec import create_arq_pool
from chainworker.obs import metrics

DESCRIPTION = """\
How the ticket service asks chainworker for mints, transfers, burns and metadata updates,
and reads their status. Every `/v1` route needs `Authorization: Bearer <token>` (tokens
are bound to one tenant). Every POST needs an `Idempotency-Key`. Errors are RFC 9457
`application/problem+json` with a stable `type` per kind.
"""


class ApiConnection(asyncpg.Connection):
    """A pooled connection released without asyncpg's reset query (one round trip less).

    The reset (advisory unlock, CLOSE ALL, UNLISTEN *, RESET ALL) undoes session state,
    and the API leaves none: its settings are transaction-local (`set_config(..., true)`),
    its advisory locks are transaction-level, and it neither listens nor keeps cursors.
    An open transaction is still rolled back on release.
    """

    def get_reset_query(self) -> str:
        return ""


async def create_api_pool(dsn: str, settings: Settings) -> asyncpg.Pool:
    """The pool of one API process: the one pool, with ApiConnection."""
    return await create_pool(dsn, settings, connection_class=ApiConnection)


def create_app(
    settings: Settings,
    *,
    app_dsn: str | None = None,
    redis_url: str | None = None,
    pool: asyncpg.Pool | None = None,
    arq: ArqRedis | None = None,
    rpc: SolanaRpc | None = None,
) -> FastAPI:
    """The API; what is not given is created at startup (and closed at shutdown)."""
    exporter.initialize_series()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            the_pool = pool
            if the_pool is None:
                dsn = app_dsn or (await services.resolve_postgres(settings)).app_dsn
                the_pool = await create_api_pool(dsn, settings)
                stack.push_async_callback(the_pool.close)
            the_arq = arq
            if the_arq is None:
                url = redis_url or (await services.resolve_redis(settings)).url
                the_arq = await create_arq_pool(RedisSettings.from_dsn(url))
                stack.push_async_callback(the_arq.aclose)
            the_rpc = rpc
            if the_rpc is None:
                the_rpc = SolanaRpc.from_settings(settings, observer=metrics.rpc_observer)
                stack.push_async_callback(the_rpc.close)
            recorder = isolation.ViolationRecorder(the_pool)
            recorder.start()
            stack.push_async_callback(recorder.close)
            app.state.violations = recorder
            app.state.context = ApiContext(
                settings=settings,
                pool=the_pool,
                arq=the_arq,
                rpc=the_rpc,
                tokens=TokenCache(ttl_seconds=settings.api_auth_cache_seconds),
            )
            yield

    app = FastAPI(
        title="chainworker",
        version="1",
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    problems.install(app)
    isolation.install(app)
    app.add_middleware(BodyLimit)
    for router in (
        operations.router,
        status.router,
        wallets.router,
        revocations.router,
        health.router,
    ):
        app.include_router(router)
    return app
