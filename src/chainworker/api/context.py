"""What every request handler shares: settings, the pool, the Arq connection, the RPC client."""

from __future__ import annotations

from dataclasses import dataclass, field

import asyncpg
from arq.connections import ArqRedis
from fastapi import Request

from chainworker.api.tokens import TokenCache
from chainworker.chain.rpc import SolanaRpc
from chainworker.config import Settings


@dataclass
class ApiContext:
    settings: Settings
    pool: asyncpg.Pool
    arq: ArqRedis
    rpc: SolanaRpc
    tokens: TokenCache = field(default_factory=TokenCache)


async def get_context(request: Request) -> ApiContext:
    # async, so FastAPI calls it in the event loop instead of a worker thread
    context: ApiContext = request.app.state.context
    return context
