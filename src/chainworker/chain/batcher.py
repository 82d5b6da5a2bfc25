"""Coalesce the sends of concurrent jobs into JSON-RPC batches.

Each job awaits its own transaction's outcome; behind the scenes, sends that arrive
within a couple of milliseconds of each other share one HTTP request per endpoint.
"""

from __future__ import annotations

from collections.abc import Sequence

from chainworker.chain.errors import TRANSPORT, ChainError
from chainworker.chain.rpc import SolanaRpc
from chainworker.coalesce import Coalescer

MAX_BATCH = 64
LINGER_SECONDS = 0.01


def _as_chain_error(error: Exception) -> ChainError:
    return error if isinstance(error, ChainError) else ChainError(TRANSPORT, str(error))


class SendBatcher:
    def __init__(
        self, rpc: SolanaRpc, *, max_batch: int = MAX_BATCH, linger_seconds: float = LINGER_SECONDS
    ) -> None:
        self._rpc = rpc
        self._sends: Coalescer[bytes, None] = Coalescer(
            self._deliver, max_batch=max_batch, linger_seconds=linger_seconds,
            name="send-batcher", on_error=_as_chain_error,
        )

    async def send(self, raw: bytes) -> None:
        """Send signed bytes; ChainError when no endpoint accepted them."""
        await self._sends.submit(raw)

    async def _deliver(self, batch: list[bytes]) -> Sequence[ChainError | None]:
        return await self._rpc.send_raw_many(batch)

    async def close(self) -> None:
        await self._sends.close(ChainError(TRANSPORT, "the sender closed"))
