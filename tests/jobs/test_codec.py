"""The job codec: JSON with a schema, and what it relies on in Arq (an Arq upgrade must keep it).

Payloads are data: one that fails the schema is never run, and an Arq worker using the
codec records it in `<queue>:dead` instead, counted, and goes on with the good jobs.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Awaitable
from pathlib import Path
from typing import Any, cast
from uuid import UUID, uuid4

import orjson
import pytest
from arq.connections import ArqRedis, RedisSettings
from arq.constants import job_key_prefix, retry_key_prefix
from arq.jobs import Job, SerializationError, deserialize_job, deserialize_job_raw, serialize_job
from arq.worker import func
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chainworker.jobs import codec
from chainworker.jobs.batch_start import BatchStartWorker
from chainworker.jobs.enqueue import JOB_FOR_OPERATION, drop_queue, enqueue_jobs
from chainworker.lifecycle.model import DeadLetterReason, TxOp
from chainworker.obs import metrics
from tests.conftest import own_queue_name
from tests.jobs.payloads import bad_payloads, pickled_job, queue_raw

LAST_MS = 253_402_300_799_999  # the last millisecond a datetime holds (9999-12-31)
_CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")

uuids = st.uuids().map(str)
valid_jobs: st.SearchStrategy[dict[str, Any]] = st.fixed_dictionaries({
    "t": st.none() | st.integers(1, 1000),
    "f": st.sampled_from(sorted(codec.JOB_FUNCTIONS)),
    "a": st.tuples(uuids, uuids),
    "k": st.just({}),
    "et": st.integers(0, LAST_MS),
})
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)
# Jobs with any field (or the set of fields) wrong, to search near the schema's edges.
near_jobs = st.fixed_dictionaries(
    {
        "t": st.none() | st.integers(-2, 1002) | json_values,
        "f": st.sampled_from([*sorted(codec.JOB_FUNCTIONS), "dead_letter", "probe"]) | st.text(),
        "a": st.lists(uuids | uuids.map(str.upper) | json_values, max_size=3),
        "k": st.just({}) | st.dictionaries(st.text(), json_values, max_size=2),
        "et": st.integers(-1, LAST_MS + 1) | st.integers(-(2**70), 2**70) | json_values,
    },
    optional={"x": json_values},
)


def independently_valid(raw: bytes) -> bool:
    """The schema again, with the standard library's parser."""
    if len(raw) > codec.MAX_PAYLOAD_BYTES:
        return False
    try:
        data = json.loads(raw)
    except ValueError:
        return False
    if not isinstance(data, dict) or sorted(data) != ["a", "et", "f", "k", "t"]:
        return False
    t, et, args = data["t"], data["et"], data["a"]
    return (
        data["f"] in codec.JOB_FUNCTIONS
        and isinstance(args, list) and len(args) == 2
        and all(isinstance(a, str) and _CANONICAL_UUID.fullmatch(a) for a in args)
        and data["k"] == {}
        and (t is None or (type(t) is int and 1 <= t <= 1000))
        and type(et) is int and 0 <= et <= LAST_MS
    )


def check_decoded(raw: bytes) -> None:
    decoded = codec.deserialize(raw)
    if decoded["f"] == codec.DEAD_LETTER_FUNCTION:
        reason, excerpt, size = decoded["a"]
        assert reason in set(DeadLetterReason)
        assert size == len(raw) and len(excerpt) <= 4 * codec.EXCERPT_BYTES
        assert not independently_valid(raw)
    else:
        assert independently_valid(raw), raw
        assert codec.deserialize(codec.serialize(decoded)) == decoded


@given(valid_jobs)
def test_a_valid_job_survives_the_round_trip_through_arq_s_own_layout(job: dict[str, Any]) -> None:
    assert codec.deserialize(codec.serialize(job)) == job
    raw = serialize_job(job["f"], job["a"], {}, job["t"], job["et"], serializer=codec.serialize)
    assert deserialize_job_raw(raw, deserializer=codec.deserialize) == (
        job["f"], job["a"], {}, job["t"], job["et"],
    )
    assert independently_valid(raw)


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2 * codec.MAX_PAYLOAD_BYTES))
def test_arbitrary_bytes_never_raise_and_never_make_a_runnable_job(raw: bytes) -> None:
    check_decoded(raw)


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(near_jobs)
def test_a_job_runs_only_if_every_field_fits_the_schema(job: dict[str, Any]) -> None:
    try:
        raw = orjson.dumps(job)
    except (TypeError, orjson.JSONEncodeError):
        return  # integers orjson cannot write are no payload anyone can send it
    check_decoded(raw)


def test_the_serializer_refuses_jobs_the_worker_would_not_run() -> None:
    request, tenant = str(uuid4()), str(uuid4())
    for function, args, kwargs in [
        ("probe", (request, tenant), {}),
        ("mint_ticket", ("not-a-uuid", tenant), {}),
        ("mint_ticket", (request,), {}),
        ("mint_ticket", (UUID(request), tenant), {}),
        ("burn_ticket", (request, tenant), {"reason": "x"}),
        (codec.DEAD_LETTER_FUNCTION, ("bad_args", "", 0), {}),
    ]:
        with pytest.raises(SerializationError):
            serialize_job(function, args, kwargs, None, 0, serializer=codec.serialize)
    assert set(JOB_FOR_OPERATION.values()) == codec.JOB_FUNCTIONS


def test_results_are_written_without_raising_and_never_read_back_as_jobs() -> None:
    # What Arq's serialize_result hands the serializer when a job fails: the exception.
    result = {"t": 1, "f": "mint_ticket", "a": ("x", "y"), "k": {}, "et": 0, "s": False,
              "r": RuntimeError("boom"), "st": 0, "ft": 1, "q": "queue", "id": "job"}
    raw = codec.serialize(result)
    assert b"boom" in raw
    assert codec.deserialize(raw)["f"] == codec.DEAD_LETTER_FUNCTION


def test_a_pickled_job_is_never_unpickled(tmp_path: Path) -> None:
    marker = tmp_path / "unpickled"
    decoded = deserialize_job(pickled_job(marker), deserializer=codec.deserialize)
    assert decoded.function == codec.DEAD_LETTER_FUNCTION and decoded.args[0] == "not_json"
    assert not marker.exists()


@pytest.fixture
async def queue(arq: ArqRedis) -> AsyncIterator[str]:
    name = own_queue_name("codec")
    yield name
    await drop_queue(arq, name)
    await arq.delete(codec.dead_letter_key(name))


def dead_lettered(reason: str) -> float:
    value = metrics.REGISTRY.get_sample_value(
        "chainworker_jobs_dead_lettered_total", {"reason": reason}
    )
    return value or 0.0


async def test_an_arq_worker_dead_letters_bad_payloads_and_runs_the_good_ones_beside_them(
    arq: ArqRedis, queue: str, tmp_path: Path, redis_url: str
) -> None:
    marker = tmp_path / "unpickled"
    ran: list[tuple[str, str, str]] = []

    async def mint_ticket(ctx: dict[str, Any], request_id: str, tenant_id: str) -> None:
        ran.append((ctx["job_id"], request_id, tenant_id))

    tenant = uuid4()
    good = [uuid4() for _ in range(3)]
    assert await enqueue_jobs(arq, queue, [(r, tenant, TxOp.MINT) for r in good]) == 3
    # Through the factory's connection, Arq reads our jobs back as jobs.
    info = await Job(
        str(good[0]), arq, _queue_name=queue, _deserializer=arq.job_deserializer
    ).info()
    assert info is not None and info.function == "mint_ticket"
    assert info.args == (str(good[0]), str(tenant))

    expected: dict[str, str] = {}
    for name, (payload, reason) in bad_payloads(marker).items():
        job_id = f"{queue}:{name}"
        await queue_raw(arq, queue, job_id, payload)
        expected[job_id] = reason
    # A job id tried before its payload was replaced is still dead-lettered, not dropped.
    await arq.set(retry_key_prefix + f"{queue}:pickle", 5)
    counted = {reason: dead_lettered(reason) for reason in DeadLetterReason}

    pool = await codec.create_arq_pool(RedisSettings.from_dsn(redis_url))
    worker = BatchStartWorker(
        functions=[func(mint_ticket, name="mint_ticket"), codec.dead_letter_function(queue)],
        queue_name=queue, redis_pool=pool, burst=True, poll_delay=0.01, keep_result=0,
        handle_signals=False, job_serializer=codec.serialize, job_deserializer=codec.deserialize,
    )
    try:
        await worker.async_run()
    finally:
        await pool.aclose()

    assert not marker.exists()
    assert sorted(ran) == sorted((str(r), str(r), str(tenant)) for r in good)
    assert (worker.jobs_complete, worker.jobs_failed, worker.jobs_retried) == (
        len(good) + len(expected), 0, 0,
    )
    entries = await cast(Awaitable[list[bytes]], arq.lrange(codec.dead_letter_key(queue), 0, -1))
    records = [orjson.loads(entry) for entry in entries]
    assert {r["job_id"]: r["reason"] for r in records} == expected
    for record in records:
        assert len(record["excerpt"]) <= 4 * codec.EXCERPT_BYTES and record["size"] > 0
    for reason in DeadLetterReason:
        assert dead_lettered(reason) - counted[reason] == list(expected.values()).count(reason)
    # Nothing left to run again: no job, retry key or queue entry for any of them.
    assert await arq.zcard(queue) == 0
    for job_id in expected:
        assert await arq.exists(job_key_prefix + job_id, retry_key_prefix + job_id) == 0


async def test_the_dead_letter_list_keeps_only_the_newest_records(
    arq: ArqRedis, queue: str
) -> None:
    key = codec.dead_letter_key(queue)
    await cast(Awaitable[int], arq.rpush(key, *[b"old"] * codec.DEAD_LETTER_KEEP))
    dead_letter = codec.dead_letter_function(queue).coroutine
    await dead_letter({"redis": arq, "job_id": "newest"}, "not_json", "x", 1)
    assert await cast(Awaitable[int], arq.llen(key)) == codec.DEAD_LETTER_KEEP
    newest = orjson.loads(await cast(Awaitable[bytes], arq.lindex(key, 0)))
    assert (newest["job_id"], newest["reason"]) == ("newest", "not_json")
