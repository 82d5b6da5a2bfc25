"""The contract with the pinned Arq: what jobs/arq_internals.py mirrors, against Arq's own code.

Each test does one thing both ways, through Arq's own code path and through ours, on the
real Redis, and compares what is left there (key by key, byte for byte); or checks an
attribute of Arq's as we use it. A failure means the installed Arq no longer does what
arq_internals follows: read Arq's source again and update that module (and only it).
"""

from __future__ import annotations

import ast
import asyncio
import inspect
import socket
import tomllib
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import orjson
import pytest
from arq import utils as arq_utils
from arq.connections import ArqRedis
from arq.constants import abort_jobs_ss, in_progress_key_prefix, job_key_prefix, retry_key_prefix
from arq.jobs import deserialize_job, deserialize_job_raw, serialize_job, serialize_result
from arq.worker import Worker, func
from packaging.requirements import Requirement
from redis.exceptions import ConnectionError as RedisConnectionError

from chainworker.jobs import arq_internals, codec
from chainworker.jobs.arq_internals import JobFields, WorkerSeams
from chainworker.jobs.batch_start import BatchStartWorker
from chainworker.jobs.enqueue import JOB_FOR_OPERATION, drop_queue, enqueue_jobs
from chainworker.lifecycle.model import TxOp
from tests.conftest import REPO_ROOT, own_queue_name

TENANT = str(UUID(int=7))
JOB_TIMEOUT_S = 30
# Two TTLs read a few ms apart, under a loaded machine, still agree within this.
TTL_SLACK_MS = 1_000

# key -> (Redis type, value, TTL in ms or -1)
Snapshot = dict[str, tuple[str, object, int]]


async def noop(ctx: dict[str, Any], request_id: str, tenant_id: str) -> None:
    return None


def worker_options(arq: ArqRedis, queue: str, **changes: Any) -> dict[str, Any]:
    """What our workers pass Arq's Worker (jobs/worker.py), on the test's queue."""
    options: dict[str, Any] = {
        "functions": [func(noop, name="mint_ticket")], "queue_name": queue,
        "redis_pool": arq, "poll_delay": 0.01, "keep_result": 0, "handle_signals": False,
        "log_results": False, "job_timeout": JOB_TIMEOUT_S,
        "job_serializer": codec.serialize, "job_deserializer": codec.deserialize,
    }
    return {**options, **changes}


def freeze_arq_clock(monkeypatch: pytest.MonkeyPatch) -> int:
    """Stop Arq's clock (arq.utils.timestamp_ms, which ours is too) at now; the frozen ms."""
    frozen = arq_utils.timestamp_ms()
    monkeypatch.setattr(arq_utils, "time", lambda: frozen / 1000)
    assert arq_utils.timestamp_ms() == frozen == arq_internals.now_ms()
    return frozen


async def snapshot(redis: ArqRedis, *tokens: str) -> Snapshot:
    """Every key whose name holds one of `tokens`: its type, value and TTL."""
    found: Snapshot = {}
    for token in tokens:
        async for raw_key in redis.scan_iter(match=f"*{token}*", count=1000):
            key = raw_key.decode()
            kind = (await redis.type(key)).decode()
            value: object = None
            if kind == "string":
                value = await redis.get(key)
            elif kind == "zset":
                value = await redis.zrange(key, 0, -1, withscores=True)
            found[key] = (kind, value, await redis.pttl(key))
    return found


def renamed(state: Snapshot, name: str, to: str) -> Snapshot:
    """`state` with `name` (a queue, in keys and in the queue's members) written as `to`."""
    out: Snapshot = {}
    for key, (kind, value, ttl) in state.items():
        if kind == "zset" and isinstance(value, list):
            value = [(member.replace(name.encode(), to.encode()), s) for member, s in value]
        out[key.replace(name, to)] = (kind, value, ttl)
    return out


def assert_same_state(theirs: Snapshot, ours: Snapshot) -> None:
    assert sorted(ours) == sorted(theirs)
    for key, (kind, value, ttl) in theirs.items():
        our_kind, our_value, our_ttl = ours[key]
        assert (our_kind, our_value) == (kind, value), key
        assert (our_ttl < 0) == (ttl < 0) and abs(our_ttl - ttl) < TTL_SLACK_MS, (key, ttl, our_ttl)


async def delete_matching(redis: ArqRedis, token: str) -> None:
    keys = [key async for key in redis.scan_iter(match=f"*{token}*", count=1000)]
    if keys:
        await redis.delete(*keys)


async def free_permits(semaphore: asyncio.Semaphore) -> int:
    """How many permits `semaphore` gives at once (each acquire below returns without waiting)."""
    count = 0
    while not semaphore.locked():
        await semaphore.acquire()
        count += 1
    for _ in range(count):
        semaphore.release()
    return count


async def enqueue_numbered(arq: ArqRedis, queue: str, count: int) -> list[str]:
    """`count` mint jobs on `queue`, ids `<queue>:0`... (the n-th for request UUID(int=n))."""
    ids = []
    for n in range(count):
        job = await arq.enqueue_job("mint_ticket", str(UUID(int=n)), TENANT,
                                    _job_id=f"{queue}:{n}", _queue_name=queue)
        assert job is not None
        ids.append(job.job_id)
    return ids


@pytest.fixture
async def queue(arq: ArqRedis) -> AsyncIterator[str]:
    name = own_queue_name("contract")
    yield name
    await drop_queue(arq, name)
    await delete_matching(arq, name)


# --- The pin -------------------------------------------------------------------------


def test_the_installed_arq_and_the_pin_are_the_series_the_module_follows() -> None:
    assert version("arq").split(".")[:2] == arq_internals.ARQ_SERIES.split(".")
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    pins = [Requirement(d) for d in project["project"]["dependencies"]]
    pin = next(r for r in pins if r.name == "arq")
    major, minor = arq_internals.ARQ_SERIES.split(".")
    assert pin.specifier.contains(f"{major}.{minor}.0")
    # A pin that lets another series in must come with this module read again.
    assert not pin.specifier.contains(f"{major}.{int(minor) + 1}.0")
    assert not pin.specifier.contains(f"{major}.{int(minor) - 1}.0")


# --- The job layout (arq/jobs.py) ----------------------------------------------------


def test_serialize_job_hands_the_serializer_our_job_fields_and_arq_reads_them_back() -> None:
    handed: list[dict[str, Any]] = []

    def capture(data: dict[str, Any]) -> bytes:
        handed.append(data)
        return b"captured"

    fields = JobFields(3, "mint_ticket", ("a", "b"), {"x": 1}, 1234)
    assert serialize_job("mint_ticket", ("a", "b"), {"x": 1}, 3, 1234, serializer=capture) == (
        b"captured"
    )
    assert len(handed) == 1 and JobFields.read(handed[0]) == fields
    assert handed[0] == fields.as_dict()

    def built(_: bytes) -> dict[str, Any]:
        return fields.as_dict()

    assert deserialize_job_raw(b"", deserializer=built) == (
        "mint_ticket", ("a", "b"), {"x": 1}, 3, 1234,
    )
    job = deserialize_job(b"", deserializer=built)
    assert (job.function, job.args, job.kwargs, job.job_try) == (
        "mint_ticket", ("a", "b"), {"x": 1}, 3,
    )
    assert job.enqueue_time == arq_utils.ms_to_datetime(1234)


def test_serialize_result_hands_the_serializer_a_result_never_taken_for_a_job() -> None:
    handed: list[dict[str, Any]] = []

    def capture(data: dict[str, Any]) -> bytes:
        handed.append(data)
        return b"captured"

    serialize_result("mint_ticket", ("a", "b"), {}, 1, 0, False, RuntimeError("boom"), 1, 2,
                     "ref", "queue", "job", serializer=capture)
    assert len(handed) == 1
    assert arq_internals.is_result(handed[0])
    assert JobFields.read(handed[0]) is None
    assert not arq_internals.is_result(JobFields(1, "f", (), {}, 0).as_dict())


# --- The enqueue (ArqRedis.enqueue_job) -------------------------------------------------


async def test_our_enqueue_writes_byte_for_byte_what_enqueue_job_writes(
    arq: ArqRedis, queue: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    frozen = freeze_arq_clock(monkeypatch)
    tenant = uuid4()
    jobs = [(uuid4(), tenant, operation) for operation in TxOp]
    ids = [str(request_id) for request_id, _, _ in jobs]

    for request_id, tenant_id, operation in jobs:
        job = await arq.enqueue_job(JOB_FOR_OPERATION[operation], str(request_id),
                                    str(tenant_id), _job_id=str(request_id), _queue_name=queue)
        assert job is not None
    theirs = await snapshot(arq, queue, *ids)
    # Arq wrote exactly the keys our module names: a job key per id, and the queue.
    assert sorted(theirs) == sorted([queue, *(arq_internals.job_key(i) for i in ids)])
    for job_id in ids:
        kind, _, ttl = theirs[arq_internals.job_key(job_id)]
        assert kind == "string" and abs(ttl - arq.expires_extra_ms) < TTL_SLACK_MS
    assert theirs[queue][1] == sorted((i.encode(), float(frozen)) for i in ids)

    # drop_queue removes all that enqueue_job wrote.
    assert await drop_queue(arq, queue) == len(jobs)
    assert await snapshot(arq, queue, *ids) == {}

    assert await enqueue_jobs(arq, queue, jobs[:1]) == 1  # one job: one script call
    assert await enqueue_jobs(arq, queue, jobs[1:]) == len(jobs) - 1  # more: one pipeline
    ours = await snapshot(arq, queue, *ids)
    assert_same_state(theirs, ours)
    assert [await arq.zscore(abort_jobs_ss, i) for i in ids] == [None] * len(ids)

    # And Arq's own reader takes them for what was asked.
    queued = await arq.queued_jobs(queue_name=queue)
    assert sorted((d.job_id, d.function, d.args, d.job_try, d.score) for d in queued) == sorted(
        (str(r), JOB_FOR_OPERATION[op], (str(r), str(t)), None, frozen) for r, t, op in jobs
    )


async def test_a_job_or_a_result_with_the_id_refuses_the_enqueue_both_ways(
    arq: ArqRedis, queue: str
) -> None:
    request_id, tenant_id = uuid4(), uuid4()
    job_id = str(request_id)

    async def arq_enqueue() -> bool:
        job = await arq.enqueue_job("mint_ticket", job_id, str(tenant_id), _job_id=job_id,
                                    _queue_name=queue)
        return job is not None

    async def our_enqueue() -> bool:
        return await enqueue_jobs(arq, queue, [(request_id, tenant_id, TxOp.MINT)]) == 1

    # A job waiting with the id.
    assert await our_enqueue()
    before = await snapshot(arq, queue, job_id)
    assert not await arq_enqueue()
    assert not await our_enqueue()
    assert_same_state(before, await snapshot(arq, queue, job_id))

    # Arq's own worker runs it and keeps its result: the result alone refuses both.
    worker = Worker(**worker_options(arq, queue, burst=True, keep_result=60))
    await asyncio.wait_for(worker.async_run(), 30)
    assert worker.jobs_complete == 1 and worker.jobs_failed == 0
    assert not await arq.exists(arq_internals.job_key(job_id))
    result = await arq.get(arq_internals.result_key(job_id))
    assert result is not None and arq_internals.is_result(orjson.loads(result))
    assert not await arq_enqueue()
    assert not await our_enqueue()
    assert await arq.zcard(queue) == 0

    # With no result kept (our workers keep none), the id can be enqueued again, both ways.
    assert await arq.delete(arq_internals.result_key(job_id)) == 1
    assert await our_enqueue()
    assert await drop_queue(arq, queue) == 1
    assert await arq_enqueue()


# --- The claim (Worker.start_jobs) -----------------------------------------------------


class HeldRuns:
    """Stands in for Worker.run_job: records each start, then waits at a gate."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, object, type]] = []
        self.gate = asyncio.Event()

    def run_job(self, job_id: str, score: int) -> Coroutine[Any, Any, bool]:
        # Recorded when start_jobs calls it, not when the task first runs.
        self.calls.append((job_id, score, type(score)))
        return self.gate.wait()


@dataclass
class Claimed:
    """What one start_jobs left behind, with the queue's name written as Q."""

    runs: list[tuple[str, object, type]]
    aborts: list[float | None]
    job_counter: int
    tasks: list[str]
    free_permits: int
    after: tuple[int, int] = (-1, -1)  # job_counter and free permits once the jobs ended


async def a_poll_of(arq: ArqRedis, queue: str) -> list[bytes]:
    """Ids of one poll: three due, one held by another worker, one deferred, one unknown."""
    for n, name in enumerate(("due0", "held", "due1", "due2", "later")):
        job = await arq.enqueue_job(
            "mint_ticket", str(UUID(int=n)), TENANT, _job_id=f"{queue}:{name}",
            _queue_name=queue, _defer_by=60 if name == "later" else None,
        )
        assert job is not None
    # Arq's own name for the key, not ours: the held job must look held to Arq.
    await arq.psetex(in_progress_key_prefix + f"{queue}:held", 60_000, b"another worker")
    return [f"{queue}:{name}".encode() for name in
            ("held", "due0", "later", "gone", "due1", "due2")]


@pytest.mark.parametrize("max_jobs", [2, 10])
async def test_our_claim_does_what_arq_s_start_jobs_does(
    arq: ArqRedis, monkeypatch: pytest.MonkeyPatch, max_jobs: int
) -> None:
    freeze_arq_clock(monkeypatch)
    outcomes: list[Claimed] = []
    states: list[Snapshot] = []
    for make in (Worker, BatchStartWorker):
        queue = own_queue_name("claim")
        try:
            worker = make(**worker_options(arq, queue, max_jobs=max_jobs))
            runs = HeldRuns()
            monkeypatch.setattr(worker, "run_job", runs.run_job)
            ids = await a_poll_of(arq, queue)
            await asyncio.wait_for(worker.start_jobs(ids), 10)
            states.append(renamed(await snapshot(arq, queue), queue, "Q"))
            outcome = Claimed(
                runs=[(job_id.replace(queue, "Q"), s, t) for job_id, s, t in runs.calls],
                aborts=[await arq.zscore(abort_jobs_ss, i.decode()) for i in ids],
                job_counter=worker.job_counter,
                tasks=sorted(job_id.replace(queue, "Q") for job_id in worker.tasks),
                free_permits=await free_permits(worker.sem),
            )
            runs.gate.set()
            await asyncio.wait_for(asyncio.gather(*worker.tasks.values()), 10)
            await asyncio.sleep(0)  # the tasks' done callbacks
            outcome.after = (worker.job_counter, await free_permits(worker.sem))
            outcomes.append(outcome)
        finally:
            await drop_queue(arq, queue)
            await delete_matching(arq, queue)

    theirs, ours = outcomes
    assert_same_state(states[0], states[1])
    assert ours == theirs
    # What both did, spelled out: the due jobs in order, up to max_jobs, with int scores;
    # an in-progress key ("1", the in-progress timeout) for each, the held one untouched.
    started = ["Q:due0", "Q:due1", "Q:due2"][:max_jobs]
    assert [job_id for job_id, _, score_type in theirs.runs if score_type is int] == started
    assert theirs.job_counter == len(started) and theirs.tasks == started
    assert theirs.after == (0, max_jobs + 1)
    in_progress = {key: (value, ttl) for key, (_, value, ttl) in states[0].items()
                   if key.startswith(in_progress_key_prefix)}
    assert sorted(in_progress) == sorted(in_progress_key_prefix + i for i in [*started, "Q:held"])
    for job_id in started:
        value, ttl = in_progress[in_progress_key_prefix + job_id]
        assert value == b"1" and abs(ttl - (JOB_TIMEOUT_S + 10) * 1000) < TTL_SLACK_MS
    assert in_progress[in_progress_key_prefix + "Q:held"][0] == b"another worker"


# --- The poll and Worker's bookkeeping (Worker.main, _poll_iteration) ---------------------


async def test_main_polls_through_around_poll_which_calls_start_jobs_with_due_ids(
    arq: ArqRedis, queue: str
) -> None:
    class Probe(WorkerSeams):
        polls = 0
        in_poll = False
        started: list[list[bytes]] = []

        async def around_poll(self, arq_poll: Callable[[], Awaitable[None]]) -> None:
            self.polls += 1
            self.in_poll = True
            try:
                await arq_poll()
            finally:
                self.in_poll = False

        async def start_jobs(self, job_ids: list[bytes]) -> None:
            assert self.in_poll, "start_jobs called outside a poll"
            self.started.append(list(job_ids))
            await super().start_jobs(job_ids)

    due = [await arq.enqueue_job("mint_ticket", str(uuid4()), TENANT, _queue_name=queue)
           for _ in range(2)]
    await arq.enqueue_job("mint_ticket", str(uuid4()), TENANT, _queue_name=queue, _defer_by=60)
    worker = Probe(**worker_options(arq, queue, burst=True, max_burst_jobs=2))
    await asyncio.wait_for(worker.main(), 30)
    assert worker.polls >= 1
    assert worker.started
    assert sorted(worker.started[0]) == sorted(j.job_id.encode() for j in due if j)
    assert all(type(i) is bytes for ids in worker.started for i in ids)
    assert worker.jobs_complete == 2


async def test_a_redis_error_in_arq_s_poll_reaches_around_poll() -> None:
    seen: list[BaseException] = []

    class Probe(WorkerSeams):
        async def around_poll(self, arq_poll: Callable[[], Awaitable[None]]) -> None:
            try:
                await arq_poll()
            except BaseException as error:
                seen.append(error)
                raise

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    dead = ArqRedis(host="127.0.0.1", port=port, socket_connect_timeout=1)
    try:
        worker = Probe(**worker_options(dead, "contract-dead"))
        with pytest.raises(RedisConnectionError):
            await worker._poll_iteration()
        assert len(seen) == 1 and isinstance(seen[0], RedisConnectionError)
    finally:
        await dead.aclose()


def test_our_seams_shadow_nothing_of_arq_s_worker() -> None:
    for name in arq_internals.SEAMS:
        assert hasattr(WorkerSeams, name), name
        assert not hasattr(Worker, name), f"Worker.{name} exists now: rename our seam"
    assert "_claim_script" not in dir(Worker)


def test_the_worker_methods_we_call_or_override_have_the_signatures_we_assume() -> None:
    expected = {
        "_poll_iteration": ["self"],
        "start_jobs": ["self", "job_ids"],
        "run_job": ["self", "job_id", "score"],
        "finish_job": ["self", "job_id", "finish", "result_data", "result_timeout_s",
                       "keep_result_forever", "incr_score", "keep_in_progress"],
    }
    for name, parameters in expected.items():
        method = Worker.__dict__[name]
        assert inspect.iscoroutinefunction(method), name
        assert list(inspect.signature(method).parameters) == parameters, name
    assert isinstance(Worker.__dict__["pool"], property)  # WorkerSeams.pool overrides it
    release = Worker.__dict__["_release_sem_dec_counter_on_complete"]
    assert not inspect.iscoroutinefunction(release)
    assert list(inspect.signature(release).parameters) == ["self"]


async def test_the_worker_attributes_we_touch_are_what_we_assume(
    arq: ArqRedis, queue: str
) -> None:
    max_jobs = 4
    worker = BatchStartWorker(**worker_options(arq, queue, max_jobs=max_jobs))
    assert isinstance(worker.sem, asyncio.BoundedSemaphore)
    assert await free_permits(worker.sem) == max_jobs + 1  # one more than max_jobs
    assert type(worker.job_counter) is int and worker.job_counter == 0
    assert worker.max_jobs == max_jobs
    assert worker.tasks == {} and isinstance(worker.tasks, dict)
    assert worker.loop is asyncio.get_running_loop()
    assert worker.pool is arq and worker.queue_name == queue
    # The claim's TTL: the longest job timeout and 10 s, as Worker.__init__ sets it.
    assert worker.in_progress_timeout_s == JOB_TIMEOUT_S + 10
    # A job's end gives back its slot and its count (the done callback run_claimed adds).
    await worker.sem.acquire()
    worker.job_counter += 1
    worker._release_sem_dec_counter_on_complete()
    assert worker.job_counter == 0 and await free_permits(worker.sem) == max_jobs + 1
    assert worker.slots_for_new_jobs() == max_jobs


# Arq's public names these modules may import, and Worker's private parts none may name.
PUBLIC_ARQ_IMPORTS = {
    ("arq", "create_pool"), ("arq", "Retry"), ("arq.connections", "ArqRedis"),
    ("arq.connections", "RedisSettings"), ("arq.connections", "create_pool"),
    ("arq.worker", "Worker"), ("arq.worker", "Function"), ("arq.worker", "func"),
}
WORKER_PRIVATE = {
    "sem", "job_counter", "tasks", "job_tasks", "loop", "run_job", "in_progress_timeout_s",
    "_poll_iteration", "_release_sem_dec_counter_on_complete", "_queue_read_offset", "_pool",
}


@pytest.mark.parametrize("name", ["batch_start.py", "enqueue.py", "codec.py"])
def test_the_other_modules_reach_arq_s_internals_only_through_arq_internals(name: str) -> None:
    tree = ast.parse((Path(arq_internals.__file__).parent / name).read_text())
    imported = {
        (node.module, alias.name)
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "arq"
        for alias in node.names
    }
    assert imported <= PUBLIC_ARQ_IMPORTS, imported - PUBLIC_ARQ_IMPORTS
    plain = [a.name for node in ast.walk(tree) if isinstance(node, ast.Import) for a in node.names]
    assert not [module for module in plain if module.split(".")[0] == "arq"]
    named = {node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)}
    assert named & WORKER_PRIVATE == set()


# --- The finish (Worker.finish_job) -------------------------------------------------------

FINISHES = [
    # (finish, result_data, result_timeout_s, keep_result_forever, incr_score, keep_in_progress)
    (True, None, None, False, None, None),  # done, no result kept (our keep_result=0)
    (True, b"result", 60.0, False, None, None),
    (True, b"result", None, True, None, None),
    (False, None, None, False, 5_000, None),  # a retry: the score is raised
    (False, None, None, False, None, 30.0),  # the in-progress key is kept a while
    (False, None, None, False, 5_000, 30.0),
]


async def test_our_batched_finish_does_what_arq_s_finish_job_does(
    arq: ArqRedis, monkeypatch: pytest.MonkeyPatch
) -> None:
    freeze_arq_clock(monkeypatch)
    states = []
    for make in (Worker, BatchStartWorker):
        queue = own_queue_name("finish")
        try:
            worker = make(**worker_options(arq, queue))
            ids = await enqueue_numbered(arq, queue, len(FINISHES))
            for job_id in ids:
                await arq.psetex(in_progress_key_prefix + job_id, 60_000, b"1")
                await arq.incr(retry_key_prefix + job_id)
                await arq.zadd(abort_jobs_ss, {job_id: 1})
            # All at once, as jobs that end together: ours writes them in one MULTI/EXEC.
            await asyncio.gather(*(
                worker.finish_job(job_id, *arguments)
                for job_id, arguments in zip(ids, FINISHES, strict=True)
            ))
            states.append(renamed(await snapshot(arq, queue), queue, "Q"))
            aborts = [await arq.zscore(abort_jobs_ss, job_id) for job_id in ids]
            states[-1]["abort"] = ("zset", aborts, -1)
        finally:
            await drop_queue(arq, queue)
            await delete_matching(arq, queue)
    theirs, ours = states
    assert_same_state(theirs, ours)
    # Spelled out: finished jobs are gone from the queue, their job and retry keys too.
    assert not any(key.startswith(job_key_prefix) and key.endswith((":0", ":1", ":2"))
                   for key in theirs)
    assert theirs["abort"][1][:3] == [None, None, None]


async def test_a_failed_batched_finish_reaches_every_job_of_the_batch(
    arq: ArqRedis, queue: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    worker = BatchStartWorker(**worker_options(arq, queue))

    async def refuses(self: Any, *args: Any, **kwargs: Any) -> Any:
        raise RedisConnectionError("Redis went away")

    monkeypatch.setattr(type(arq.pipeline()), "execute", refuses)
    results = await asyncio.gather(
        *(worker.finish_job(f"{queue}:{n}", True, None, None, False, None, None)
          for n in range(3)),
        return_exceptions=True,
    )
    assert all(isinstance(r, RedisConnectionError) for r in results), results


# --- The start (Worker.run_job's first round trip) ---------------------------------------


def recording_function(seen: list[tuple[str, int, str]]) -> Any:
    """A job function that notes its job id, its try and its first argument."""

    async def record(ctx: dict[str, Any], request_id: str, tenant_id: str) -> None:
        seen.append((ctx["job_id"], ctx["job_try"], request_id))

    return func(record, name="mint_ticket")


async def test_our_batched_start_does_what_arq_s_run_job_start_does(
    arq: ArqRedis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Jobs started together, some on a later try: the same tries and arguments reach the
    function, and the same keys are left, as when each starts with its own MULTI/EXEC."""
    freeze_arq_clock(monkeypatch)
    states, seens = [], []
    for make in (Worker, BatchStartWorker):
        queue = own_queue_name("start")
        seen: list[tuple[str, int, str]] = []
        try:
            worker = make(**worker_options(arq, queue, functions=[recording_function(seen)]))
            ids = await enqueue_numbered(arq, queue, 6)
            for n, job_id in enumerate(ids):
                for _ in range(n % 3):  # tried before: this start is try n % 3 + 1
                    await arq.incr(retry_key_prefix + job_id)
            await asyncio.gather(*(worker.run_job(job_id, 1) for job_id in ids))
            states.append(renamed(await snapshot(arq, queue), queue, "Q"))
            seens.append(sorted((job_id.replace(queue, "Q"), *rest) for job_id, *rest in seen))
        finally:
            await drop_queue(arq, queue)
            await delete_matching(arq, queue)
    theirs, ours = states
    assert_same_state(theirs, ours)
    assert seens[0] == seens[1]
    assert seens[1] == [
        (f"Q:{n}", n % 3 + 1, str(UUID(int=n))) for n in range(6)
    ]


async def test_jobs_that_start_together_share_one_multi_exec(
    arq: ArqRedis, queue: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[tuple[str, int, str]] = []
    worker = BatchStartWorker(**worker_options(arq, queue, functions=[recording_function(seen)]))
    ids = await enqueue_numbered(arq, queue, 20)
    pipeline_type = type(arq.pipeline())
    real_execute = pipeline_type.execute
    executed: list[list[str]] = []  # the commands of each MULTI/EXEC

    async def counted(self: Any, *args: Any, **kwargs: Any) -> Any:
        executed.append([str(command[0][0]) for command in self.command_stack])
        return await real_execute(self, *args, **kwargs)

    monkeypatch.setattr(pipeline_type, "execute", counted)
    await asyncio.gather(*(worker.run_job(job_id, 1) for job_id in ids))
    assert len(seen) == 20
    starts = [commands for commands in executed if "INCRBY" in commands or "INCR" in commands]
    # One start in flight at a time: all 20 in one, or the first alone and then the rest.
    assert 1 <= len(starts) <= 2, executed
    assert sum(commands.count("GET") for commands in starts) == 20, starts


async def test_a_poisoned_retry_count_fails_only_its_own_job_s_start(
    arq: ArqRedis, queue: str
) -> None:
    """A retry key that is not a number (INCR fails) in a batch of starts: that job's
    start raises, as in Arq's own run_job; the jobs beside it run."""
    seen: list[tuple[str, int, str]] = []
    worker = BatchStartWorker(**worker_options(arq, queue, functions=[recording_function(seen)]))
    ids = await enqueue_numbered(arq, queue, 4)
    await arq.set(retry_key_prefix + ids[2], b"not a number")
    results = await asyncio.gather(
        *(worker.run_job(job_id, 1) for job_id in ids), return_exceptions=True
    )
    assert [type(r).__name__ for r in results] == ["NoneType", "NoneType", "ResponseError",
                                                   "NoneType"], results
    assert sorted(job_id for job_id, *_ in seen) == sorted([ids[0], ids[1], ids[3]])


async def test_the_job_function_and_the_rest_of_the_worker_see_arq_s_own_pool(
    arq: ArqRedis, queue: str
) -> None:
    pools: list[object] = []
    worker = BatchStartWorker(**worker_options(arq, queue))

    async def looks(ctx: dict[str, Any], request_id: str, tenant_id: str) -> None:
        pools.append(worker.pool)  # inside the job's own task, after its start

    worker.functions["mint_ticket"] = func(looks, name="mint_ticket")
    (job_id,) = await enqueue_numbered(arq, queue, 1)
    await worker.run_job(job_id, 1)
    assert pools == [arq] and worker.pool is arq
