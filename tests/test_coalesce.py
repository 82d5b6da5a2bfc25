"""The Coalescer: each caller gets its own item's result, whatever the batching."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from typing import Any, TypeVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chainworker.coalesce import Coalescer

T = TypeVar("T")


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coroutine)


@settings(max_examples=60, deadline=None)
@given(
    items=st.lists(st.integers(-1000, 1000), max_size=80),
    max_batch=st.integers(1, 17),
    waves=st.integers(1, 4),
)
def test_every_caller_gets_its_own_result_and_batches_stay_bounded(
    items: list[int], max_batch: int, waves: int
) -> None:
    batches: list[list[int]] = []

    async def flush(batch: list[int]) -> list[int | BaseException]:
        batches.append(batch)
        await asyncio.sleep(0)
        # Negative items fail for their own caller only.
        return [ValueError(str(i)) if i < 0 else i * 2 for i in batch]

    async def scenario() -> list[object]:
        coalescer: Coalescer[int, int] = Coalescer(
            flush, max_batch=max_batch, linger_seconds=0.001, name="test"
        )
        results: list[object] = []
        try:
            size = max(1, len(items) // waves)
            for start in range(0, len(items), size):
                wave = items[start : start + size]
                results += await asyncio.gather(
                    *(coalescer.submit(i) for i in wave), return_exceptions=True
                )
        finally:
            await coalescer.close(RuntimeError("closed"))
        return results

    results = run(scenario())
    for item, result in zip(items, results, strict=True):
        if item < 0:
            assert isinstance(result, ValueError) and str(result) == str(item)
        else:
            assert result == item * 2
    assert sorted(i for batch in batches for i in batch) == sorted(items)
    assert all(1 <= len(batch) <= max_batch for batch in batches)


def test_a_failing_flush_reaches_every_caller_of_its_batch_as_on_error_says() -> None:
    async def flush(batch: list[int]) -> list[int | BaseException]:
        raise OSError("down")

    async def scenario() -> list[object]:
        coalescer: Coalescer[int, int] = Coalescer(
            flush, max_batch=8, linger_seconds=0.001, name="test",
            on_error=lambda error: LookupError(f"wrapped: {error}"),
        )
        try:
            return await asyncio.gather(
                *(coalescer.submit(i) for i in range(5)), return_exceptions=True
            )
        finally:
            await coalescer.close(RuntimeError("closed"))

    results = run(scenario())
    assert len(results) == 5
    assert all(isinstance(r, LookupError) and str(r) == "wrapped: down" for r in results)


def test_a_flush_with_the_wrong_number_of_results_fails_its_callers() -> None:
    async def flush(batch: list[int]) -> list[int | BaseException]:
        return list(batch[:-1])

    async def scenario() -> list[object]:
        coalescer: Coalescer[int, int] = Coalescer(
            flush, max_batch=8, linger_seconds=0.001, name="test"
        )
        try:
            return await asyncio.gather(
                *(coalescer.submit(i) for i in range(3)), return_exceptions=True
            )
        finally:
            await coalescer.close(RuntimeError("closed"))

    results = run(scenario())
    assert len(results) == 3
    assert all(isinstance(r, RuntimeError) and "2 results for 3 items" in str(r) for r in results)


def test_a_cancelled_caller_does_not_disturb_the_others() -> None:
    release = asyncio.Event()

    async def flush(batch: list[int]) -> list[int | BaseException]:
        await release.wait()
        return list(batch)

    async def scenario() -> tuple[list[int], bool]:
        coalescer: Coalescer[int, int] = Coalescer(
            flush, max_batch=8, linger_seconds=0.001, name="test"
        )
        try:
            tasks = [asyncio.create_task(coalescer.submit(i)) for i in range(4)]
            await asyncio.sleep(0.01)  # the batch is in flush
            tasks[1].cancel()
            release.set()
            done = [await t for i, t in enumerate(tasks) if i != 1]
            with contextlib.suppress(asyncio.CancelledError):
                await tasks[1]
            return done, tasks[1].cancelled()
        finally:
            await coalescer.close(RuntimeError("closed"))

    done, cancelled = run(scenario())
    assert done == [0, 2, 3]
    assert cancelled


def test_closing_fails_callers_still_waiting_with_the_given_error() -> None:
    async def flush(batch: list[int]) -> list[int | BaseException]:
        return list(batch)

    async def scenario() -> None:
        coalescer: Coalescer[int, int] = Coalescer(
            flush, max_batch=8, linger_seconds=60, name="test"
        )
        waiting = asyncio.create_task(coalescer.submit(1))
        await asyncio.sleep(0.01)  # queued, lingering
        await coalescer.close(ConnectionError("stopping"))
        with pytest.raises(ConnectionError, match="stopping"):
            await waiting

    run(scenario())


@settings(max_examples=40, deadline=None)
@given(
    items=st.lists(st.integers(0, 1000), min_size=1, max_size=60),
    max_batch=st.integers(1, 12),
    in_flight=st.integers(1, 3),
)
def test_max_in_flight_bounds_concurrent_flushes_and_loses_nobody(
    items: list[int], max_batch: int, in_flight: int
) -> None:
    running = {"now": 0, "most": 0}

    async def flush(batch: list[int]) -> list[int | BaseException]:
        running["now"] += 1
        running["most"] = max(running["most"], running["now"])
        await asyncio.sleep(0.002)
        running["now"] -= 1
        return [i + 1 for i in batch]

    async def scenario() -> list[int]:
        coalescer: Coalescer[int, int] = Coalescer(
            flush, max_batch=max_batch, linger_seconds=0.0005, name="test",
            max_in_flight=in_flight,
        )
        try:
            return await asyncio.gather(*(coalescer.submit(i) for i in items))
        finally:
            await coalescer.close(RuntimeError("closed"))

    assert run(scenario()) == [i + 1 for i in items]
    assert 1 <= running["most"] <= in_flight


def test_callers_arriving_during_a_flush_make_up_the_next_batch() -> None:
    """With one flush in flight, a slow flush lets the next batch grow (group commit)."""
    batches: list[list[int]] = []
    first_started = asyncio.Event()

    async def flush(batch: list[int]) -> list[int | BaseException]:
        batches.append(batch)
        first_started.set()
        await asyncio.sleep(0.05)
        return list(batch)

    async def scenario() -> None:
        coalescer: Coalescer[int, int] = Coalescer(
            flush, max_batch=100, linger_seconds=0.001, name="test", max_in_flight=1
        )
        try:
            first = asyncio.create_task(coalescer.submit(0))
            await first_started.wait()
            late = []
            for i in range(1, 21):  # they trickle in while the first flush runs
                late.append(asyncio.create_task(coalescer.submit(i)))
                await asyncio.sleep(0.001)
            assert await first == 0
            assert [await task for task in late] == list(range(1, 21))
        finally:
            await coalescer.close(RuntimeError("closed"))

    run(scenario())
    assert batches == [[0], list(range(1, 21))]
