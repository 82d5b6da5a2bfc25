"""Everything chainworker knows about Arq that Arq does not document as public.

Follows arq 0.28 (pyproject pins `arq>=0.28,<0.29`; read from the source of 0.28.0).
tests/jobs/test_arq_contract.py holds every piece below against the installed Arq's own
code paths; an Arq upgrade that fails it means this module (and only this module) must
follow.

Arq's public surface, which the rest of chainworker uses freely: `create_pool`,
`RedisSettings`, `ArqRedis.enqueue_job`/`queued_jobs`/`expires_extra_ms`, `Job`,
`JobStatus`, `func`, `Retry`, `Worker(...)` and its parameters (`job_serializer`,
`job_deserializer`, `max_jobs`, ...), `Worker.run`/`async_run`/`run_check`/`start_jobs`,
and the job context (`ctx["redis"]`, `ctx["job_id"]`, ...).

What this module mirrors, piece by piece (file and function of Arq's source):

- Redis keys (arq/constants.py): `arq:job:<id>` holds the serialized job,
  `arq:result:<id>` its result, `arq:in-progress:<id>` marks a job a worker has claimed,
  `arq:retry:<id>` counts its tries. A queue is a sorted set of job ids scored with the
  time in ms (arq/utils.py `timestamp_ms`) from which the job is due
  (arq/connections.py `ArqRedis.enqueue_job`; arq/worker.py `Worker._poll_iteration`
  reads the due ids with ZRANGEBYSCORE).
- The job layout (arq/jobs.py `serialize_job`, `deserialize_job_raw`, `deserialize_job`,
  `serialize_result`): the serializer is handed a dict `{"t": try, "f": function,
  "a": args, "k": kwargs, "et": enqueue time in ms}`; results add `s r st ft q id`.
  `JobFields`, `is_result`.
- The enqueue (arq/connections.py `ArqRedis.enqueue_job`: WATCH, EXISTS job and result,
  MULTI, PSETEX job, ZADD queue, EXEC) as one Lua script, so that thousands of jobs can
  share one pipeline: `register_enqueue`, `enqueue_script_call`.
- The claim (arq/worker.py `Worker.start_jobs`: per id WATCH in-progress, EXISTS it,
  ZSCORE, MULTI PSETEX in-progress `1` for `in_progress_timeout_s`, EXEC) as one Lua
  script for a whole poll: `WorkerSeams.claim_due`. One deliberate difference: Arq skips
  a job whose score is 0 (`not score`), the script takes it (due since 1970).
- The finish (arq/worker.py `Worker.finish_job`: per job one MULTI/EXEC that drops or
  extends the in-progress key, stores the result, deletes the retry count and the job,
  removes the id from the abort set and the queue, or raises its score): the same
  commands for every job that finishes while the previous finish is written, in one
  MULTI/EXEC: `WorkerSeams.finish_job`.
- The start (arq/worker.py `Worker.run_job`: its first use of `self.pool` is one
  MULTI/EXEC that reads the job and counts the try: GET job, INCR and EXPIRE retry, and
  ZREM abort when aborts are allowed): the same commands for every job that starts while
  the previous start is written, in one MULTI/EXEC, each job answered with its own
  replies (an error among them fails that job's start only): `WorkerSeams.run_job`,
  which hands run_job's first `self.pool` a recording pipeline (`_StartPipeline`).
- Worker's private bookkeeping (arq/worker.py `Worker.__init__`, `pool`, `start_jobs`,
  `_release_sem_dec_counter_on_complete`, `_poll_iteration`, `main`): `sem` (a
  BoundedSemaphore of `max_jobs + 1` permits, one taken per started job until it ends),
  `job_counter`, `tasks`, `loop`, `run_job(job_id, score)`, `in_progress_timeout_s`, and
  `_poll_iteration`, which `main` awaits once per poll and which lets Redis errors out.
  `WorkerSeams` puts them behind named methods.

May touch: arq.constants, arq.utils.timestamp_ms and to_ms, arq.jobs.serialize_job, Worker's
private attributes above, and Redis. Nothing else in chainworker may touch these.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from contextvars import ContextVar
from typing import Any, Final, NamedTuple, cast

from arq.connections import ArqRedis
from arq.constants import (
    abort_jobs_ss,
    in_progress_key_prefix,
    job_key_prefix,
    result_key_prefix,
    retry_key_prefix,
)
from arq.jobs import Serializer, serialize_job
from arq.utils import timestamp_ms, to_ms
from arq.worker import Worker
from redis.asyncio import Redis
from redis.commands.core import AsyncScript

from chainworker.coalesce import Coalescer

# The Arq release series whose source this module follows (held by the contract test).
ARQ_SERIES: Final = "0.28"


# --- Redis keys (arq/constants.py) ---------------------------------------------------


def job_key(job_id: str) -> str:
    """Where Arq keeps the serialized job `job_id`."""
    return job_key_prefix + job_id


def job_keys(job_ids: Iterable[bytes]) -> list[bytes]:
    """`job_key` of ids as Redis returns them (a queue's members)."""
    prefix = job_key_prefix.encode()
    return [prefix + job_id for job_id in job_ids]


def result_key(job_id: str) -> str:
    """Where Arq keeps the result of job `job_id` (none here: the worker keeps none)."""
    return result_key_prefix + job_id


def in_progress_key(job_id: str) -> str:
    """The key a worker holds while it runs job `job_id`."""
    return in_progress_key_prefix + job_id


def retry_key(job_id: str) -> str:
    """Arq's count of the tries of job `job_id`."""
    return retry_key_prefix + job_id


async def queued_job_ids(redis: Redis, queue_name: str) -> list[bytes]:
    """The ids of the jobs waiting in a queue, as Redis returns them."""
    return list(await redis.zrange(queue_name, 0, -1))


async def queue_depth(redis: Redis, queue_name: str) -> int:
    """Jobs waiting in a queue: Arq's queue is a sorted set of job ids scored by when due."""
    return int(await redis.zcard(queue_name))


def now_ms() -> int:
    """Arq's clock: queue scores and enqueue times are this, ms since the epoch."""
    return timestamp_ms()


# --- The job layout (arq/jobs.py) -----------------------------------------------------

# The dict serialize_job hands the serializer, and deserialize_job_raw reads back.
_JOB_KEYS: Final = frozenset({"t", "f", "a", "k", "et"})
# serialize_result's dict: the job's keys and the outcome.
_RESULT_KEYS: Final = _JOB_KEYS | {"s", "r", "st", "ft", "q", "id"}


class JobFields(NamedTuple):
    """The fields of an Arq job by name; `as_dict` is what the serializer is handed."""

    job_try: object
    function: object
    args: object
    kwargs: object
    enqueued_ms: object

    @classmethod
    def read(cls, data: object) -> JobFields | None:
        """The fields of `data` if it is a dict with exactly a job's keys, else None."""
        if not isinstance(data, dict) or data.keys() != _JOB_KEYS:
            return None
        return cls(data["t"], data["f"], data["a"], data["k"], data["et"])

    def as_dict(self) -> dict[str, Any]:
        # In serialize_job's order, so a JSON serializer writes the keys as Arq lists them.
        return {
            "t": self.job_try,
            "f": self.function,
            "a": self.args,
            "k": self.kwargs,
            "et": self.enqueued_ms,
        }


def is_result(data: Mapping[str, object]) -> bool:
    """Whether `data` has exactly the keys of a job result (serialize_result's dict)."""
    return data.keys() == _RESULT_KEYS


# --- The enqueue (arq/connections.py ArqRedis.enqueue_job) ----------------------------

# KEYS: job, result, queue. ARGV: expiry in ms, the serialized job, score (enqueue time
# in ms), job id. 1 when new, 0 when a job or a result with this id exists already, as
# enqueue_job returns None then.
_ENQUEUE: Final = """
if redis.call('EXISTS', KEYS[1], KEYS[2]) > 0 then return 0 end
redis.call('PSETEX', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[4])
return 1
"""

ScriptCall = tuple[list[str], list[str | bytes | int]]


def register_enqueue(redis: ArqRedis) -> AsyncScript:
    """The enqueue script; call it with `*enqueue_script_call(...)` (and `client=` a pipeline)."""
    return redis.register_script(_ENQUEUE)


def enqueue_script_call(
    redis: ArqRedis,
    queue_name: str,
    job_id: str,
    function: str,
    args: tuple[Any, ...],
    *,
    serializer: Serializer,
) -> ScriptCall:
    """Keys and arguments of the enqueue script for one job due now.

    The script then writes what `redis.enqueue_job(function, *args, _job_id=job_id,
    _queue_name=queue_name)` writes with `serializer` as the job serializer: no defer,
    no try, the connection's default expiry.
    """
    enqueued_ms = timestamp_ms()
    job = serialize_job(function, args, {}, None, enqueued_ms, serializer=serializer)
    keys = [job_key(job_id), result_key(job_id), queue_name]
    return keys, [redis.expires_extra_ms, job, enqueued_ms, job_id]


# --- The claim and Worker's bookkeeping (arq/worker.py Worker) ------------------------

# ARGV: queue, in-progress key prefix, in-progress timeout (ms), now (ms), job ids...
# Returns the claimed ids with their scores: id, score, id, score, ...
_CLAIM: Final = """
local queue, prefix, timeout, now = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local started = {}
for i = 5, #ARGV do
    local id = ARGV[i]
    local key = prefix .. id
    if redis.call('EXISTS', key) == 0 then
        local score = redis.call('ZSCORE', queue, id)
        if score and tonumber(score) <= now then
            redis.call('PSETEX', key, timeout, '1')
            started[#started + 1] = id
            started[#started + 1] = score
        end
    end
end
return started
"""

# The methods WorkerSeams adds; none may shadow one of Worker's (the contract test).
SEAMS: Final = (
    "around_poll",
    "finish_many",
    "take_slots",
    "give_back_slots",
    "slots_for_new_jobs",
    "claim_due",
    "run_claimed",
    "start_many",
)


# Finishes written in one MULTI/EXEC at most; starts too.
FINISH_BATCH_MAX: Final = 500
START_BATCH_MAX: Final = 500

# Set by WorkerSeams.run_job in the job's own task, until its first use of `pool`.
_STARTING: Final[ContextVar[bool]] = ContextVar("arq_job_starting", default=False)

# A command as a pipeline method's name and arguments, recorded to be replayed.
_Command = tuple[str, tuple[Any, ...], dict[str, Any]]


class _StartPipeline:
    """What run_job's `async with self.pool.pipeline(transaction=True)` gets: its commands
    are recorded, and `execute` sends them with those of the other jobs starting now."""

    def __init__(self, starts: Coalescer[list[_Command], list[Any]]) -> None:
        self._starts = starts
        self._commands: list[_Command] = []

    async def __aenter__(self) -> _StartPipeline:
        return self

    async def __aexit__(self, *_: object) -> None:
        return None

    def __getattr__(self, name: str) -> Callable[..., _StartPipeline]:
        def record(*args: Any, **kwargs: Any) -> _StartPipeline:
            self._commands.append((name, args, kwargs))
            return self

        return record

    async def execute(self) -> list[Any]:
        return await self._starts.submit(self._commands)


class _StartPool:
    """The pool run_job's start sees: only its pipeline (anything else fails loudly)."""

    def __init__(self, starts: Coalescer[list[_Command], list[Any]]) -> None:
        self._starts = starts

    def pipeline(self, transaction: bool = True) -> _StartPipeline:
        if not transaction:
            raise RuntimeError("Arq's job start no longer uses a MULTI/EXEC: see arq_internals")
        return _StartPipeline(self._starts)


class _Finish(NamedTuple):
    """The arguments of one Worker.finish_job call."""

    job_id: str
    finish: bool
    result_data: bytes | None
    result_timeout_s: float | None
    keep_result_forever: bool
    incr_score: int | None
    keep_in_progress: float | None


class WorkerSeams(Worker):
    """Arq's Worker with the private parts chainworker needs behind named methods.

    A subclass overrides `around_poll` (instead of `_poll_iteration`) and may override
    `start_jobs` (public) using the methods here, never Worker's attributes directly.
    `finish_job` is Arq's, batched (see `finish_many`).
    """

    _claim_script: AsyncScript | None = None  # registered once the worker has its pool
    _finishes: Coalescer[_Finish, None] | None = None  # made on the first finish
    _starts: Coalescer[list[_Command], list[Any]] | None = None  # made on the first start

    @property
    def pool(self) -> ArqRedis:
        """Arq's pool; to run_job's start (its first use of it), the batching pool."""
        if _STARTING.get():
            _STARTING.set(False)
            if self._starts is None:
                self._starts = Coalescer(
                    self.start_many, max_batch=START_BATCH_MAX, linger_seconds=0.0,
                    name="arq-start", max_in_flight=1,
                )
            return cast(ArqRedis, _StartPool(self._starts))
        return super().pool

    async def run_job(self, job_id: str, score: int) -> None:
        """Arq's run_job; its first round trip (read the job, count the try) is written
        together with those of the other jobs that start meanwhile.

        At hundreds of jobs a second that round trip, one MULTI/EXEC per job, was about a
        tenth of the worker process. The flag lives in this job's task (run_claimed starts
        each job in its own) and is cleared by that first use, before the job's function
        runs, so the function and everything after the start see Arq's own pool.
        """
        _STARTING.set(True)
        try:
            await super().run_job(job_id, score)
        finally:
            _STARTING.set(False)

    async def close(self) -> None:
        """Arq's close (its jobs end first, their finishes written), then the batchers'."""
        await super().close()
        for batcher in (self._starts, self._finishes):
            if batcher is not None:
                await batcher.close(RuntimeError("the worker is closed"))

    async def start_many(self, starts: Sequence[list[_Command]]) -> list[list[Any] | Exception]:
        """The start commands of every job in `starts`, in one MULTI/EXEC; each job gets
        its own replies, or the first error among them (as its own MULTI/EXEC would raise)."""
        async with super().pool.pipeline(transaction=True) as tr:
            for commands in starts:
                for name, args, kwargs in commands:
                    getattr(tr, name)(*args, **kwargs)
            replies = await tr.execute(raise_on_error=False)
        out: list[list[Any] | Exception] = []
        at = 0
        for commands in starts:
            mine = list(replies[at : at + len(commands)])
            at += len(commands)
            error = next((reply for reply in mine if isinstance(reply, Exception)), None)
            out.append(error if error is not None else mine)
        return out

    async def finish_job(
        self,
        job_id: str,
        finish: bool,
        result_data: bytes | None,
        result_timeout_s: float | None,
        keep_result_forever: bool,
        incr_score: int | None,
        keep_in_progress: float | None,
    ) -> None:
        """Arq's finish of one job, written together with the others that finish meanwhile.

        At hundreds of jobs a second, one MULTI/EXEC round trip per job was about a tenth of
        the worker process; here one is in flight at a time and the jobs that finish while
        it is written share the next.
        """
        if self._finishes is None:
            self._finishes = Coalescer(
                self.finish_many, max_batch=FINISH_BATCH_MAX, linger_seconds=0.0,
                name="arq-finish", max_in_flight=1,
            )
        await self._finishes.submit(_Finish(
            job_id, finish, result_data, result_timeout_s, keep_result_forever, incr_score,
            keep_in_progress,
        ))

    async def finish_many(self, finishes: Sequence[_Finish]) -> list[None]:
        """Worker.finish_job's commands for every finish, in one MULTI/EXEC."""
        async with self.pool.pipeline(transaction=True) as tr:
            for f in finishes:
                delete_keys = []
                in_progress = in_progress_key_prefix + f.job_id
                if f.keep_in_progress is None:
                    delete_keys.append(in_progress)
                else:
                    tr.pexpire(in_progress, to_ms(f.keep_in_progress))
                if f.finish:
                    if f.result_data:
                        expire = None if f.keep_result_forever else f.result_timeout_s
                        tr.set(result_key_prefix + f.job_id, f.result_data, px=to_ms(expire))
                    delete_keys += [retry_key_prefix + f.job_id, job_key_prefix + f.job_id]
                    tr.zrem(abort_jobs_ss, f.job_id)
                    tr.zrem(self.queue_name, f.job_id)
                elif f.incr_score:
                    tr.zincrby(self.queue_name, f.incr_score, f.job_id)
                if delete_keys:
                    tr.delete(*delete_keys)
            await tr.execute()
        return [None] * len(finishes)

    async def _poll_iteration(self) -> None:
        # Worker.main awaits this once per poll; the subclass's hook wraps Arq's own.
        await self.around_poll(super()._poll_iteration)

    async def around_poll(self, arq_poll: Callable[[], Awaitable[None]]) -> None:
        """One poll of Worker.main: `arq_poll` reads the due ids and calls `start_jobs`."""
        await arq_poll()

    async def take_slots(self, most: int) -> int:
        """Wait for one free job slot, then take up to `most` in all that are free now.

        Returns how many were taken; each must be given back (`give_back_slots`) unless a
        claimed job holds it (`run_claimed`). A slot is a permit of Worker.sem, which has
        one more than `max_jobs`: `slots_for_new_jobs` is the bound that counts.
        """
        await self.sem.acquire()  # waits for a free slot, as Worker.start_jobs does
        taken = 1
        while taken < most and not self.sem.locked():
            await self.sem.acquire()  # a free slot: returns without waiting
            taken += 1
        return taken

    def give_back_slots(self, slots: int) -> None:
        for _ in range(slots):
            self.sem.release()

    def slots_for_new_jobs(self) -> int:
        """How many more jobs may start now (Worker.start_jobs stops at max_jobs running)."""
        return self.max_jobs - self.job_counter

    async def claim_due(self, job_ids: Sequence[bytes]) -> list[tuple[str, int]]:
        """Claim those of `job_ids` nobody holds and that are due, in one script.

        Each claimed id gets its in-progress key, as Worker.start_jobs sets it; returns the
        claimed ids with their queue scores, in the order given.
        """
        if self._claim_script is None:
            self._claim_script = self.pool.register_script(_CLAIM)
        timeout_ms = int(self.in_progress_timeout_s * 1000)
        reply = await self._claim_script(
            args=[self.queue_name, in_progress_key_prefix, timeout_ms, timestamp_ms(), *job_ids]
        )
        # Redis answers a score as a string ("1712345678901"); run_job takes an int.
        return [(reply[i].decode(), int(float(reply[i + 1]))) for i in range(0, len(reply), 2)]

    def run_claimed(self, job_id: str, score: int) -> None:
        """Run a claimed job as Worker.start_jobs does: it holds one taken slot until it ends."""
        self.job_counter += 1
        task = self.loop.create_task(self.run_job(job_id, score))
        task.add_done_callback(lambda _: self._release_sem_dec_counter_on_complete())
        self.tasks[job_id] = task
