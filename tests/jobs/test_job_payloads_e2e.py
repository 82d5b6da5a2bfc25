"""A Redis writer cannot run code: real worker processes, Postgres, Redis and the localnet.

Whatever is written into `arq:job:<id>` is data. A payload that is not one of our jobs
is dead-lettered (recorded, counted, never run) while the worker goes on with the good
jobs beside it, and a real request whose payload was replaced is still carried out.
"""

from __future__ import annotations

import dataclasses
import re
import uuid
from collections.abc import Awaitable
from pathlib import Path
from typing import cast
from urllib.parse import quote, urlsplit, urlunsplit

import asyncpg
import httpx
import orjson
import pytest
from redis.asyncio import Redis
from redis.exceptions import NoPermissionError

from chainworker.jobs import codec
from chainworker.lifecycle.model import DeadLetterReason
from chainworker.localnet.process import free_port
from tests.helpers import Stack, wait_for
from tests.jobs.payloads import bad_payloads, pickled_job, queue_raw
from tests.jobs.test_lifecycle_e2e import request_statuses, settled
from tests.jobs.test_worker_metrics import samples

README = Path(__file__).resolve().parents[2] / "README.md"


async def dead_letters(redis: Redis, queue: str) -> dict[str, dict[str, object]]:
    entries = await cast(Awaitable[list[bytes]], redis.lrange(codec.dead_letter_key(queue), 0, -1))
    return {record["job_id"]: record for record in map(orjson.loads, entries)}


async def test_a_redis_writer_cannot_run_code_in_the_worker(
    stack: Stack, admin: asyncpg.Connection, tmp_path: Path
) -> None:
    seeded = stack.cli_json("seed", "--tickets", "2")
    tenant, (replaced, beside) = seeded["tenant_id"], seeded["ticket_ids"]
    requests = stack.cli_json("enqueue", "mint", "--tenant", tenant, "--ticket", "-",
                              stdin=f"{replaced}\n{beside}")
    request_of = {r["ticket_id"]: r["request_id"] for r in requests}
    marker = tmp_path / "unpickled"
    expected = {request_of[replaced]: "not_json"}
    redis = Redis.from_url(stack.redis_url)
    try:
        # The recorded request's own job, replaced by a pickle that would create the marker.
        await queue_raw(redis, stack.queue, request_of[replaced], pickled_job(marker))
        for name, (payload, reason) in bad_payloads(marker).items():
            job_id = f"{name}-{uuid.uuid4()}"
            await queue_raw(redis, stack.queue, job_id, payload)
            expected[job_id] = reason
        port = free_port()
        worker = stack.worker(metrics_port=port)
        try:
            async def all_recorded() -> bool:
                assert not marker.exists(), "a payload ran as code"
                return len(await dead_letters(redis, stack.queue)) >= len(expected)

            await wait_for(all_recorded, 30, "every bad payload dead-lettered")
            # The good job beside them, and the replaced request once the sweeper requeues it.
            await wait_for(lambda: settled(admin, tenant, 2), 60, "both mints")
            async with httpx.AsyncClient(timeout=5) as http:
                found = samples((await http.get(f"http://127.0.0.1:{port}/metrics")).text)
            assert worker.process.poll() is None, "the worker kept running"
        finally:
            worker.stop()
        records = await dead_letters(redis, stack.queue)
        queued = await redis.zrange(stack.queue, 0, -1)
    finally:
        await redis.delete(codec.dead_letter_key(stack.queue))
        await redis.aclose()
    assert not marker.exists(), "a payload ran as code"
    assert {job_id: record["reason"] for job_id, record in records.items()} == expected
    assert all(len(str(r["excerpt"])) <= 4 * codec.EXCERPT_BYTES for r in records.values())
    assert not queued
    assert await request_statuses(admin, tenant) == {"confirmed": 2}
    for reason in DeadLetterReason:
        key = ("chainworker_jobs_dead_lettered_total", (("reason", reason),))
        assert found[key] == list(expected.values()).count(reason), reason
    output = worker.output()
    assert output.count("job dead-lettered") == len(expected)
    assert "deserializing job" not in output and "Traceback" not in output


def documented_acl() -> list[str]:
    """The README's `ACL SETUSER chainworker ...` line, as its words."""
    found = re.search(r"^ACL SETUSER chainworker (.+)$", README.read_text(), re.M)
    assert found, "the README shows no ACL for chainworker"
    return found.group(1).split()


async def test_the_documented_redis_acl_is_all_chainworker_needs(
    stack: Stack, admin: asyncpg.Connection, redis_url: str
) -> None:
    user, password = f"cwtest-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    rules = [
        f">{password}" if rule.startswith(">") else
        f"~{stack.queue}*" if rule == "~chainworker:*" else rule
        for rule in documented_acl()
    ]
    assert f"~{stack.queue}*" in rules and "~arq:*" in rules
    root = Redis.from_url(redis_url)
    try:
        await root.execute_command("ACL", "SETUSER", user, *rules)
    except NoPermissionError as error:
        await root.aclose()
        pytest.skip(f"this Redis does not let the tests create an ACL user: {error}")
    parts = urlsplit(redis_url)
    netloc = f"{quote(user)}:{password}@{parts.hostname}:{parts.port or 6379}"
    limited = urlunsplit(parts._replace(netloc=netloc))
    confined = dataclasses.replace(stack, redis_url=limited)
    client = Redis.from_url(limited)
    try:
        for refused in (client.flushall(), client.config_get("*"), client.get("someone:else"),
                        client.keys("*"), client.acl_list()):
            with pytest.raises(NoPermissionError):
                await refused
        seeded = confined.cli_json("seed", "--tickets", "2")
        tenant = seeded["tenant_id"]
        # Two at once: the enqueue script goes through a pipeline (SCRIPT EXISTS, EVALSHA).
        confined.cli("enqueue", "mint", "--tenant", tenant, "--ticket", "-",
                     stdin="\n".join(seeded["ticket_ids"]))
        await queue_raw(root, stack.queue, f"bad-{uuid.uuid4()}", b"not a job")
        worker = confined.worker()
        try:
            await wait_for(lambda: settled(admin, tenant, 2), 60, "the mints")

            async def recorded() -> bool:
                return len(await dead_letters(root, stack.queue)) == 1

            await wait_for(recorded, 30, "the bad payload dead-lettered")
        finally:
            worker.stop()
        assert await request_statuses(admin, tenant) == {"confirmed": 2}
        assert "NOPERM" not in worker.output() and "Traceback" not in worker.output()
    finally:
        await client.aclose()
        await root.execute_command("ACL", "DELUSER", user)
        await root.delete(codec.dead_letter_key(stack.queue))
        await root.aclose()


pytestmark = pytest.mark.timeout(120)
