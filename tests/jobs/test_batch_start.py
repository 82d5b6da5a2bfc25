"""BatchStartWorker: Arq's start checks, made for a whole poll in one Redis script."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Callable
from typing import Any
from uuid import UUID

import pytest
from arq import Retry
from arq.connections import ArqRedis
from arq.constants import in_progress_key_prefix, job_key_prefix, retry_key_prefix
from arq.typing import WorkerCoroutine
from arq.worker import func
from redis.exceptions import ResponseError

from chainworker.jobs import codec
from chainworker.jobs.batch_start import BatchStartWorker
from chainworker.jobs.enqueue import drop_queue
from tests.conftest import own_queue_name
from tests.helpers import wait_for

TENANT = str(UUID(int=1))


def number(request_id: str) -> int:
    """The n of a job enqueued by `enqueue` (the codec takes only ids as arguments)."""
    return UUID(request_id).int


class Probe:
    """A job function that records each run and waits at a gate."""

    def __init__(self) -> None:
        self.runs: Counter[int] = Counter()
        self.running = 0
        self.most_at_once = 0
        self.gate = asyncio.Event()

    async def run(self, ctx: dict[str, Any], request_id: str, tenant_id: str) -> None:
        n = number(request_id)
        self.runs[n] += 1
        self.running += 1
        self.most_at_once = max(self.most_at_once, self.running)
        try:
            await self.gate.wait()
        finally:
            self.running -= 1


@pytest.fixture
async def queue(arq: ArqRedis) -> AsyncIterator[str]:
    name = own_queue_name("batch-start")
    yield name
    await drop_queue(arq, name)


def make_worker(
    arq: ArqRedis, queue: str, job: Probe | WorkerCoroutine, max_jobs: int
) -> BatchStartWorker:
    """A worker running `job` (a Probe's, or any function) as the job "mint_ticket"."""
    function = job.run if isinstance(job, Probe) else job
    return BatchStartWorker(
        functions=[func(function, name="mint_ticket")], queue_name=queue, redis_pool=arq,
        max_jobs=max_jobs, poll_delay=0.01, keep_result=0, handle_signals=False,
        log_results=False, job_timeout=30, job_serializer=codec.serialize,
        job_deserializer=codec.deserialize,
    )


async def enqueue(arq: ArqRedis, queue: str, count: int, **options: Any) -> list[bytes]:
    ids = []
    for n in range(count):
        job = await arq.enqueue_job("mint_ticket", str(UUID(int=n)), TENANT,
                                    _job_id=f"{queue}:{n}", _queue_name=queue, **options)
        assert job is not None
        ids.append(job.job_id.encode())
    return ids


async def settle(condition: Callable[[], bool], what: str) -> None:
    async def check() -> bool:
        return condition()

    await wait_for(check, 10, what, interval=0.01)


async def poll_until_empty(arq: ArqRedis, queue: str, *workers: BatchStartWorker) -> None:
    """Poll as Arq's main loop does, every worker seeing the same ids, until none is queued."""
    for _ in range(200):
        due = await arq.zrangebyscore(queue, min=float("-inf"), max=float("inf"))
        if not due:
            return
        orders = [due if k % 2 == 0 else due[::-1] for k in range(len(workers))]
        await asyncio.gather(*(w.start_jobs(ids) for w, ids in zip(workers, orders, strict=True)))
        await asyncio.sleep(0.02)
    raise AssertionError("the queue never emptied")


async def test_a_poll_starts_no_more_jobs_than_max_jobs_and_later_polls_the_rest(
    arq: ArqRedis, queue: str
) -> None:
    probe = Probe()
    worker = make_worker(arq, queue, probe, max_jobs=3)
    ids = await enqueue(arq, queue, 7)
    await worker.start_jobs(ids)
    await settle(lambda: probe.running == 3, "three jobs running")
    await asyncio.sleep(0.05)
    assert probe.running == 3 and sum(probe.runs.values()) == 3
    probe.gate.set()
    await settle(lambda: worker.job_counter == 0, "every slot given back")
    await poll_until_empty(arq, queue, worker)
    await settle(lambda: sum(probe.runs.values()) == 7 and probe.running == 0, "all seven run")
    assert probe.runs == Counter(range(7)) and probe.most_at_once == 3
    await settle(lambda: worker.job_counter == 0, "every slot given back")


async def test_a_job_held_elsewhere_not_yet_due_or_unknown_is_not_started(
    arq: ArqRedis, queue: str
) -> None:
    probe = Probe()
    probe.gate.set()
    worker = make_worker(arq, queue, probe, max_jobs=10)
    due = await enqueue(arq, queue, 2)
    deferred = await arq.enqueue_job(
        "mint_ticket", str(UUID(int=90)), TENANT, _job_id=f"{queue}:later", _queue_name=queue,
        _defer_by=60,
    )
    assert deferred is not None
    held = due[1].decode()
    await arq.psetex(in_progress_key_prefix + held, 60_000, b"1")  # another worker runs it
    await worker.start_jobs([*due, deferred.job_id.encode(), f"{queue}:gone".encode()])
    await settle(lambda: probe.runs[0] == 1, "the due job run")
    await asyncio.sleep(0.05)
    assert probe.runs == Counter({0: 1})
    assert set(worker.tasks) == {due[0].decode()}
    assert not await arq.exists(in_progress_key_prefix + deferred.job_id)
    assert await arq.zscore(queue, held) is not None  # still queued for its holder
    await settle(lambda: worker.job_counter == 0, "no slot kept by a skipped id")


async def test_two_workers_on_one_queue_never_start_the_same_job(
    arq: ArqRedis, queue: str
) -> None:
    probe = Probe()
    probe.gate.set()
    first = make_worker(arq, queue, probe, max_jobs=40)
    second = make_worker(arq, queue, probe, max_jobs=40)
    await enqueue(arq, queue, 300)
    await poll_until_empty(arq, queue, first, second)  # one in id order, one reversed
    await settle(lambda: sum(probe.runs.values()) >= 300 and probe.running == 0, "300 runs")
    await asyncio.sleep(0.1)
    assert probe.runs == Counter(range(300))


async def test_a_failed_claim_gives_its_slots_back(arq: ArqRedis, queue: str) -> None:
    probe = Probe()
    worker = make_worker(arq, queue, probe, max_jobs=4)
    await arq.set(queue, b"not a sorted set")  # a real Redis error: WRONGTYPE in the script
    for _ in range(3):
        with pytest.raises(ResponseError, match="WRONGTYPE"):
            # Slots that leaked would make this wait for a free one forever.
            await asyncio.wait_for(worker.start_jobs([b"a", b"b", b"c", b"d"]), 5)
    await arq.delete(queue)
    ids = await enqueue(arq, queue, 4)
    await asyncio.wait_for(worker.start_jobs(ids), 5)
    await settle(lambda: probe.running == 4, "all four slots in use")
    probe.gate.set()
    await settle(lambda: worker.job_counter == 0, "every slot given back")


async def test_finished_jobs_leave_nothing_behind_and_a_retried_job_stays_queued(
    arq: ArqRedis, queue: str
) -> None:
    """Jobs it started finish and retry as Arq's own do (an Arq upgrade must keep this)."""
    retried: Counter[int] = Counter()

    async def job(ctx: dict[str, Any], request_id: str, tenant_id: str) -> None:
        n = number(request_id)
        if n == 0 and not retried[n]:
            retried[n] += 1
            raise Retry(defer=60)

    worker = make_worker(arq, queue, job, max_jobs=50)
    ids = [i.decode() for i in await enqueue(arq, queue, 40)]
    before = await arq.zscore(queue, ids[0])
    assert before is not None
    await worker.start_jobs([i.encode() for i in ids])

    async def done() -> bool:
        return await arq.zcard(queue) == 1 and worker.job_counter == 0

    await wait_for(done, 10, "39 jobs finished and one deferred", interval=0.01)
    for job_id in ids[1:]:
        assert await arq.exists(
            job_key_prefix + job_id, retry_key_prefix + job_id, in_progress_key_prefix + job_id
        ) == 0
        assert await arq.zscore(queue, job_id) is None
    # The retried job keeps its definition and waits, deferred, for its next try.
    assert await arq.exists(job_key_prefix + ids[0]) == 1
    after = await arq.zscore(queue, ids[0])
    assert after is not None and after >= before + 60_000
