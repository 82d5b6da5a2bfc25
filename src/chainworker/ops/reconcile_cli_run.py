"""How a `chainworker reconcile` or `chainworker tx` command runs: the services it opens,
and every expected failure as one line on stderr with exit 2.

Exit codes, for cron and CI: 0 clean, 1 findings (reported, and settled with --apply),
2 error (bad arguments, unreachable services): one line on stderr, nothing changed.
Shared by `reconcile_cli` and `reconcile_tx_cli`; it opens PostgreSQL, the chain and Redis
and knows nothing of what a command does with them.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import asyncpg
import typer
from arq.connections import ArqRedis, RedisSettings
from redis.exceptions import RedisError

from chainworker import services
from chainworker.chain.errors import ChainError
from chainworker.chain.rpc import SolanaRpc
from chainworker.config import Settings
from chainworker.db.pool import create_pool
from chainworker.jobs.codec import create_arq_pool
from chainworker.ops.reconcile_tx import OperatorError

EXIT_CLEAN = 0
EXIT_FINDINGS = 1
EXIT_ERROR = 2

T = TypeVar("T")


class UsageError(Exception):
    """A bad argument: reported in one line, exit 2, nothing done."""


def exit_error(message: str) -> typer.Exit:
    typer.echo(f"chainworker: {message}", err=True)
    return typer.Exit(EXIT_ERROR)


def run_command(job: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine; any expected failure becomes one line and exit 2."""
    try:
        return asyncio.run(job())
    except (UsageError, OperatorError) as error:
        raise exit_error(str(error)) from None
    except ChainError as error:
        raise exit_error(f"Solana RPC: {error}") from None
    except services.ServiceError as error:
        raise exit_error(str(error)) from None
    except (asyncpg.PostgresError, asyncpg.InterfaceError) as error:
        raise exit_error(f"PostgreSQL: {error}") from None
    except RedisError as error:
        raise exit_error(f"Redis: {error}") from None
    except OSError as error:
        raise exit_error(f"cannot reach a service: {error}") from None


@asynccontextmanager
async def open_database(settings: Settings) -> AsyncIterator[asyncpg.Pool]:
    target = await services.resolve_postgres(settings)
    pool = await create_pool(target.app_dsn, settings)
    try:
        yield pool
    finally:
        await pool.close()


@asynccontextmanager
async def open_chain(settings: Settings) -> AsyncIterator[SolanaRpc]:
    rpc = SolanaRpc.from_settings(settings)
    try:
        yield rpc
    finally:
        await rpc.close()


@asynccontextmanager
async def open_queue(settings: Settings) -> AsyncIterator[ArqRedis]:
    target = await services.resolve_redis(settings)
    arq = await create_arq_pool(RedisSettings.from_dsn(target.url))
    try:
        yield arq
    finally:
        await arq.aclose()
