"""Job payloads anyone able to write to Redis could put in `arq:job:<id>`, and how to queue one."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any
from uuid import uuid4

import orjson
from redis.asyncio import Redis

from chainworker.jobs.arq_internals import job_key, now_ms


class Touch:
    """Unpickling this opens `path` for writing: code run by whoever reads the payload."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, tuple[str, str]]:
        return (open, (str(self.path), "w"))


def job(**changes: Any) -> dict[str, Any]:
    """A valid job as JSON would hold it, with `changes` applied."""
    valid: dict[str, Any] = {
        "t": None, "f": "mint_ticket", "a": [str(uuid4()), str(uuid4())], "k": {},
        "et": now_ms(),
    }
    return {**valid, **changes}


def pickled_job(marker: Path) -> bytes:
    """What Arq's default serializer reads: a mint job whose unpickling creates `marker`."""
    return pickle.dumps(
        {"t": None, "f": "mint_ticket", "a": (Touch(marker), str(uuid4())), "k": {},
         "et": now_ms()}
    )


def bad_payloads(marker: Path) -> dict[str, tuple[bytes, str]]:
    """Name -> (payload, the dead-letter reason it must get)."""
    uuid = str(uuid4())
    with_extra_key = {**job(), "x": 1}
    without_kwargs = job()
    del without_kwargs["k"]
    return {
        "pickle": (pickled_job(marker), "not_json"),
        "garbage": (b"\x00\xff\xfe not a job \x80\x04", "not_json"),
        "truncated": (orjson.dumps(job())[:-7], "not_json"),
        "json_list": (b"[1, 2, 3]", "bad_shape"),
        "nested": (b"[" * 500 + b"]" * 500, "bad_shape"),
        "missing_key": (orjson.dumps(without_kwargs), "bad_shape"),
        "extra_key": (orjson.dumps(with_extra_key), "bad_shape"),
        "kwargs": (orjson.dumps(job(k={"request_id": uuid})), "bad_shape"),
        "bool_try": (orjson.dumps(job(t=True)), "bad_shape"),
        "string_time": (orjson.dumps(job(et="now")), "bad_shape"),
        "unknown_function": (orjson.dumps(job(f="os.system")), "unknown_function"),
        "dead_letter_itself": (orjson.dumps(job(f="dead_letter")), "unknown_function"),
        "extra_args": (orjson.dumps(job(a=[uuid, uuid, uuid])), "bad_args"),
        "one_arg": (orjson.dumps(job(a=[uuid])), "bad_args"),
        "non_uuid_args": (orjson.dumps(job(a=["not-a-uuid", "x"])), "bad_args"),
        "uppercase_uuid": (orjson.dumps(job(a=[uuid.upper(), uuid])), "bad_args"),
        "number_args": (orjson.dumps(job(a=[1, 2])), "bad_args"),
        "oversized": (b" " * (1 << 20) + orjson.dumps(job()), "oversized"),
    }


async def queue_raw(redis: Redis, queue: str, job_id: str, payload: bytes) -> None:
    """Write a payload where Arq keeps job `job_id` and queue it, as a Redis writer could."""
    await redis.psetex(job_key(job_id), 60_000, payload)
    await redis.zadd(queue, {job_id: now_ms()})
