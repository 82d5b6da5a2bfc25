"""Hand the items of concurrent callers to one function together.

Each caller awaits its own item's result; behind the scenes, items that arrive within
a few milliseconds of each other go to `flush` as one list. Sends share one JSON-RPC
batch this way, and the requests of concurrent jobs share one database transaction.

With `max_in_flight`, at most that many flushes run at once and items arriving
meanwhile wait for the next one: the busier the flush, the bigger the next batch
(group commit that adapts to load, rather than many small concurrent batches).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")

# Results for a batch, in its order: a value, or the exception that caller gets.
Flush = Callable[[list[Item]], Awaitable[Sequence["Result | BaseException"]]]


class Coalescer(Generic[Item, Result]):
    def __init__(
        self,
        flush: Flush[Item, Result],
        *,
        max_batch: int,
        linger_seconds: float,
        name: str,
        on_error: Callable[[Exception], BaseException] = lambda error: error,
        max_in_flight: int | None = None,
    ) -> None:
        """`on_error` turns an exception raised by `flush` into what every caller gets."""
        self._flush = flush
        self._max_batch = max_batch
        self._linger = linger_seconds
        self._name = name
        self._on_error = on_error
        self._pending: list[tuple[Item, asyncio.Future[Result]]] = []
        self._wakeup = asyncio.Event()
        self._runner: asyncio.Task[None] | None = None
        self._flushes: set[asyncio.Task[None]] = set()
        self._slots = asyncio.Semaphore(max_in_flight) if max_in_flight else None

    async def submit(self, item: Item) -> Result:
        if self._runner is None or self._runner.done():
            self._runner = asyncio.create_task(self._run(), name=self._name)
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self._pending.append((item, future))
        self._wakeup.set()
        return await future

    async def _run(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            if len(self._pending) < self._max_batch:
                await asyncio.sleep(self._linger)  # let concurrent callers join this batch
            if self._slots is not None:
                await self._slots.acquire()  # callers arriving meanwhile join this batch
            cut = self._max_batch
            batch, self._pending = self._pending[:cut], self._pending[cut:]
            if self._pending:
                self._wakeup.set()
            if not batch:
                self._release_slot()
                continue
            task = asyncio.create_task(self._deliver(batch))
            self._flushes.add(task)
            task.add_done_callback(self._flushes.discard)
            task.add_done_callback(lambda _: self._release_slot())

    def _release_slot(self) -> None:
        if self._slots is not None:
            self._slots.release()

    async def _deliver(self, batch: list[tuple[Item, asyncio.Future[Result]]]) -> None:
        try:
            results: Sequence[Result | BaseException] = await self._flush(
                [item for item, _ in batch]
            )
            if len(results) != len(batch):
                raise RuntimeError(f"{self._name}: {len(results)} results for {len(batch)} items")
        except Exception as error:  # never leave a caller waiting
            results = [self._on_error(error)] * len(batch)
        for (_, future), result in zip(batch, results, strict=True):
            if future.done():  # its caller was cancelled
                continue
            if isinstance(result, BaseException):
                future.set_exception(result)
            else:
                future.set_result(result)

    async def close(self, error: BaseException) -> None:
        """Stop; flushes under way finish, callers still waiting get `error`."""
        if self._runner is not None:
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._runner
        for task in list(self._flushes):
            with contextlib.suppress(Exception):
                await task
        for _, future in self._pending:
            if not future.done():
                future.set_exception(error)
        self._pending = []
