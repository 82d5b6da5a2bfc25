"""Coalesce the sends of concurrent jobs into JSON-RPC batches.

Each job awaits its own transaction's outcome; behind the scenes, sends that arrive
within a couple of milliseconds of each other share one HTTP request per endpoint.
"""

from __future__ import annotations

import asyncio
import contextlib

from chainworker.chain.errors import TRANSPORT, ChainError
from chainworker.chain.rpc import SolanaRpc

MAX_BATCH = 64
LINGER_SECONDS = 0.01


class SendBatcher:
    def __init__(
        self, rpc: SolanaRpc, *, max_batch: int = MAX_BATCH, linger_seconds: float = LINGER_SECONDS
    ) -> None:
        self._rpc = rpc
        self._max_batch = max_batch
        self._linger = linger_seconds
        self._pending: list[tuple[bytes, asyncio.Future[None]]] = []
        self._wakeup = asyncio.Event()
        self._runner: asyncio.Task[None] | None = None
        self._deliveries: set[asyncio.Task[None]] = set()

    async def send(self, raw: bytes) -> None:
        """Send signed bytes; ChainError when no endpoint accepted them."""
        if self._runner is None or self._runner.done():
            self._runner = asyncio.create_task(self._run(), name="send-batcher")
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((raw, future))
        self._wakeup.set()
        await future

    async def _run(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            if len(self._pending) < self._max_batch:
                await asyncio.sleep(self._linger)  # let concurrent jobs join this batch
            cut = self._max_batch
            batch, self._pending = self._pending[:cut], self._pending[cut:]
            if self._pending:
                self._wakeup.set()
            if batch:
                delivery = asyncio.create_task(self._deliver(batch))
                self._deliveries.add(delivery)
                delivery.add_done_callback(self._deliveries.discard)

    async def _deliver(self, batch: list[tuple[bytes, asyncio.Future[None]]]) -> None:
        try:
            outcomes: list[ChainError | None] = await self._rpc.send_raw_many(
                [raw for raw, _ in batch]
            )
        except Exception as error:  # never leave a job waiting
            failure = error if isinstance(error, ChainError) else ChainError(TRANSPORT, str(error))
            outcomes = [failure] * len(batch)
        for (_, future), outcome in zip(batch, outcomes, strict=True):
            if future.done():
                continue
            if outcome is None:
                future.set_result(None)
            else:
                future.set_exception(outcome)

    async def close(self) -> None:
        if self._runner is not None:
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._runner
        for task in list(self._deliveries):
            with contextlib.suppress(Exception):
                await task
        for _, future in self._pending:
            if not future.done():
                future.set_exception(ChainError(TRANSPORT, "the sender closed"))
        self._pending = []
