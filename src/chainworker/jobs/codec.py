"""Arq job payloads as JSON with a schema, and the one way to open an Arq connection.

Redis delivers job ids and payloads, nothing more: a payload is data, never code.
Arq's default codec rebuilds arbitrary Python objects from the bytes, so anyone who
can write `arq:job:<id>` could run code in the worker (the process holding the
authority key and both seeds). Here a
job is JSON holding exactly the fields Arq reads, checked for size before parsing:

    {"t": try or null,
     "f": "mint_ticket" | "transfer_ticket" | "burn_ticket" | "metadata_update_ticket"
     | "verify_ticket",
     "a": [request id, tenant id], "k": {}, "et": enqueue time in ms}

with both ids canonical UUID strings. A payload that fails is never run and never
fails the worker: `deserialize` answers with a job for `DEAD_LETTER_FUNCTION`
(registered by the worker through `dead_letter_function`), which counts and logs it
and keeps its id, reason and a bounded excerpt in `<queue>:dead`. Arq then finishes
that job like any other, so nothing retries it; the request behind the id, if it
is a recorded one, is re-enqueued by the sweeper once its grace has passed.

What this relies on in Arq (held by tests/jobs/test_codec.py and test_arq_contract.py):
- Arq hands `job_serializer` a job's fields as a dict and runs the function named there
  with the job's args on what `job_deserializer` returns, with `ctx["job_id"]` and
  `ctx["redis"]` set. The dict's layout is Arq's internals: `jobs/arq_internals.py`
  (`JobFields`) holds it, and this module reads and builds jobs only through it;
- job results (`serialize_result`, a superset of the job's keys: `arq_internals.is_result`)
  go through `job_serializer` too, even with `keep_result=0`; they are never read back as
  jobs.
Beyond that this module uses Arq's public surface only (`create_pool`, `func`, `ArqRedis`).
"""

from __future__ import annotations

import contextlib
from typing import Any, Final
from uuid import UUID

import orjson
from arq import create_pool
from arq.connections import ArqRedis, RedisSettings
from arq.worker import Function, func

from chainworker.jobs.arq_internals import JobFields, is_result, now_ms
from chainworker.lifecycle.model import DeadLetterReason, TxOp
from chainworker.obs import logs, metrics

# The Arq function that carries out each operation (jobs/functions.py registers them).
JOB_FOR_OPERATION: Final = {op: f"{op}_ticket" for op in TxOp}
JOB_FUNCTIONS: Final = frozenset(JOB_FOR_OPERATION.values())
DEAD_LETTER_FUNCTION: Final = "dead_letter"
# A real job is about 140 bytes; anything far larger is refused before it is parsed.
MAX_PAYLOAD_BYTES: Final = 1024
# Bytes of a refused payload kept with its record (enough to tell what wrote it).
EXCERPT_BYTES: Final = 200
# Records kept per queue in `<queue>:dead`, newest first.
DEAD_LETTER_KEEP: Final = 1000
# Arq counts tries per job id, and the id may be a real request's that was tried (and
# retried) before its payload was replaced: the bad payload must still be recorded.
# The function never asks for a retry, so each payload runs it once.
_DEAD_LETTER_MAX_TRIES: Final = 1000

_MAX_TRY: Final = 1000
_MAX_ENQUEUE_MS: Final = 253_402_300_799_999  # 9999-12-31, the last time datetime can hold

_REASONS: Final = frozenset(DeadLetterReason)

log = logs.get_logger(__name__)


class JobRejected(ValueError):
    """A payload that is not a job of ours, and why."""

    def __init__(self, reason: DeadLetterReason) -> None:
        super().__init__(f"job payload rejected: {reason}")
        self.reason = reason


def dead_letter_key(queue_name: str) -> str:
    return f"{queue_name}:dead"


def _canonical_uuid(value: object) -> bool:
    if not isinstance(value, str) or len(value) != 36:
        return False
    try:
        return str(UUID(value)) == value
    except ValueError:
        return False


def _bounded_int(value: object, low: int, high: int) -> bool:
    # bool is an int to Python, never to this schema.
    return type(value) is int and low <= value <= high


def check_job(data: object) -> dict[str, Any]:
    """The job in `data` (a decoded payload) in Arq's form; raises JobRejected."""
    fields = JobFields.read(data)
    if fields is None:
        raise JobRejected(DeadLetterReason.BAD_SHAPE)
    function, args = fields.function, fields.args
    if not isinstance(function, str) or function not in JOB_FUNCTIONS:
        raise JobRejected(DeadLetterReason.UNKNOWN_FUNCTION)
    if not isinstance(args, list | tuple) or len(args) != 2:
        raise JobRejected(DeadLetterReason.BAD_ARGS)
    if not all(_canonical_uuid(arg) for arg in args):
        raise JobRejected(DeadLetterReason.BAD_ARGS)
    job_try, enqueued_ms, kwargs = fields.job_try, fields.enqueued_ms, fields.kwargs
    if not isinstance(kwargs, dict) or kwargs:
        raise JobRejected(DeadLetterReason.BAD_SHAPE)
    if job_try is not None and not _bounded_int(job_try, 1, _MAX_TRY):
        raise JobRejected(DeadLetterReason.BAD_SHAPE)
    if not _bounded_int(enqueued_ms, 0, _MAX_ENQUEUE_MS):
        raise JobRejected(DeadLetterReason.BAD_SHAPE)
    return JobFields(job_try, function, (args[0], args[1]), {}, enqueued_ms).as_dict()


def parse_job(raw: bytes) -> dict[str, Any]:
    """A payload read from Redis, checked; raises JobRejected."""
    if len(raw) > MAX_PAYLOAD_BYTES:
        raise JobRejected(DeadLetterReason.OVERSIZED)
    try:
        data = orjson.loads(raw)
    except (orjson.JSONDecodeError, ValueError, TypeError, RecursionError):
        raise JobRejected(DeadLetterReason.NOT_JSON) from None
    return check_job(data)


def _describe(value: object) -> str:
    return repr(value)


def serialize(data: dict[str, Any]) -> bytes:
    """Arq's `job_serializer`: a job must pass the schema (SerializationError otherwise).

    Results (an exception, for a failed job) are written as plain JSON with anything
    JSON cannot hold as its repr; the worker keeps none and nothing reads them as jobs.
    """
    if JobFields.read(data) is not None:
        return orjson.dumps(check_job(data))  # orjson writes the args tuple as a list
    if is_result(data):
        return orjson.dumps(data, default=_describe)
    raise ValueError(f"not an Arq job or result: {sorted(data)}")


def deserialize(raw: bytes) -> dict[str, Any]:
    """Arq's `job_deserializer`: never raises; a bad payload becomes a dead-letter job.

    Raising would make Arq fail the job with no record of what it was.
    """
    try:
        if not isinstance(raw, bytes | bytearray | memoryview):
            raise JobRejected(DeadLetterReason.NOT_JSON)
        return parse_job(bytes(raw))
    except JobRejected as rejected:
        reason: DeadLetterReason = rejected.reason
    except Exception:  # a case the checks above do not foresee is still only data
        reason = DeadLetterReason.BAD_SHAPE
    return _dead_letter_job(reason, raw)


def _dead_letter_job(reason: DeadLetterReason, raw: object) -> dict[str, Any]:
    size = -1
    excerpt = ""
    with contextlib.suppress(Exception):
        data = bytes(raw) if isinstance(raw, bytes | bytearray | memoryview) else repr(raw).encode()
        size = len(data)
        excerpt = data[:EXCERPT_BYTES].decode("utf-8", "backslashreplace")
    args = (reason.value, excerpt, size)
    return JobFields(None, DEAD_LETTER_FUNCTION, args, {}, now_ms()).as_dict()


def dead_letter_function(queue_name: str) -> Function:
    """The job the worker registers under DEAD_LETTER_FUNCTION for `queue_name`."""
    key = dead_letter_key(queue_name)

    async def dead_letter(ctx: dict[str, Any], reason: str, excerpt: str, size: int) -> None:
        job_id = str(ctx.get("job_id"))
        if reason not in _REASONS:  # the payload's own words stay out of the labels
            reason = DeadLetterReason.BAD_SHAPE
        # Counted and logged first: the record below needs Redis, which may be failing.
        metrics.JOBS_DEAD_LETTERED.labels(reason=reason).inc()
        log.warning("job dead-lettered", job_id=job_id, reason=reason, size=size, queue=key)
        record = {
            "job_id": job_id,
            "reason": reason,
            "size": size,
            "excerpt": excerpt,
            "at_ms": now_ms(),
        }
        redis: ArqRedis = ctx["redis"]
        async with redis.pipeline(transaction=True) as pipe:
            pipe.lpush(key, orjson.dumps(record))
            pipe.ltrim(key, 0, DEAD_LETTER_KEEP - 1)
            await pipe.execute()

    return func(dead_letter, name=DEAD_LETTER_FUNCTION, max_tries=_DEAD_LETTER_MAX_TRIES)


async def create_arq_pool(settings: RedisSettings) -> ArqRedis:
    """Every Arq connection chainworker opens: jobs in and out through this codec."""
    return await create_pool(settings, job_serializer=serialize, job_deserializer=deserialize)
