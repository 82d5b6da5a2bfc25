"""Another tenant's object answers 404, exactly like a missing one, and the attempt is recorded.

A route raises `Hidden(table, key)` when a lookup under the caller's tenant finds
nothing. The handler answers 404 at once and hands the lookup to the recorder: a
background task that asks `chainworker_note_cross_tenant` whether the key exists under
another tenant and, if so, writes a `tenant_access_violations` row (at most 20 per token
and minute). Nothing of that happens in the request path, so a cross-tenant id answers
in the same time as a missing one, and existence never leaks. The recorder's queue is
bounded; what it drops, and what the bound suppresses, is counted in
`chainworker_tenant_violations_total`.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from uuid import UUID

import asyncpg
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from chainworker.api.problems import Problem
from chainworker.api.tokens import Principal
from chainworker.db import violations
from chainworker.db.pool import tenant_transaction
from chainworker.obs import logs, metrics

log = logs.get_logger(__name__)

QUEUE_SIZE = 1000

NOUNS = {
    "tickets": "ticket",
    "ticket_transfers": "transfer",
    "chain_requests": "request",
    "pending_transactions": "transaction",
    "events": "event",
    "multisig_approval_requests": "revocation",
    "users": "user",
}


class Hidden(Exception):
    """Nothing with this key is visible to the caller's tenant."""

    def __init__(self, table: str, key: str) -> None:
        super().__init__(f"{table} {key}")
        self.table = table
        self.key = key


@dataclass(frozen=True, slots=True)
class Lookup:
    """A lookup that found nothing: who asked, for what, on which route."""

    tenant_id: UUID
    token_id: UUID
    table: str
    key: str
    operation: str


class ViolationRecorder:
    """Records hidden lookups off the request path, one at a time, from a bounded queue."""

    def __init__(self, pool: asyncpg.Pool, *, queue_size: int = QUEUE_SIZE) -> None:
        self._pool = pool
        self._queue: asyncio.Queue[Lookup] = asyncio.Queue(maxsize=queue_size)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="violation-recorder")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def note(self, lookup: Lookup) -> None:
        """Queue the lookup; never waits (a full queue drops it, counted)."""
        try:
            self._queue.put_nowait(lookup)
        except asyncio.QueueFull:
            metrics.TENANT_VIOLATIONS.labels(outcome="dropped").inc()

    async def drain(self) -> None:
        """Wait until every queued lookup is recorded (tests, shutdown)."""
        await self._queue.join()

    async def _run(self) -> None:
        while True:
            lookup = await self._queue.get()
            try:
                await self._record(lookup)
            except asyncio.CancelledError:
                raise
            except Exception as failure:  # the recorder must outlive a database hiccup
                log.error("could not record a cross-tenant lookup", error=repr(failure))
            finally:
                self._queue.task_done()

    async def _record(self, lookup: Lookup) -> None:
        async with tenant_transaction(
            self._pool, lookup.tenant_id, reason="cross-tenant lookup", source="api"
        ) as conn:
            noted = await violations.note_cross_tenant(
                conn, lookup.table, lookup.key, lookup.operation, lookup.token_id
            )
        if noted != "none":
            metrics.TENANT_VIOLATIONS.labels(outcome=noted).inc()
        if noted == "recorded":
            log.warning(
                "cross-tenant access", table=lookup.table, tenant_id=str(lookup.tenant_id)
            )


def install(app: FastAPI) -> None:
    async def on_hidden(request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, Hidden)
        principal: Principal | None = getattr(request.state, "principal", None)
        recorder: ViolationRecorder | None = getattr(request.app.state, "violations", None)
        if principal is not None and recorder is not None:
            recorder.note(Lookup(
                principal.tenant_id, principal.token_id, error.table, error.key[:100],
                f"{request.method} {request.url.path}"[:200],
            ))
        noun = NOUNS.get(error.table, "resource")
        return Problem("not-found", f"no such {noun}").response(request.url.path)

    app.add_exception_handler(Hidden, on_hidden)
