"""Idempotency-Key handling for every POST, through the shared schema's functions.

`acquire_idempotency_key(tenant, key, operation, request_hash)` decides:
- acquired: this call does the work; it stores its response with
  `complete_idempotency_key` in the same transaction as the work, so the response is
  stored exactly when the work is committed;
- cached: the same key and body succeeded before: the stored response is replayed
  (header `Idempotent-Replayed: true`);
- hash_mismatch: the key was used with a different method, path or body: 422;
- in_progress: the first call still holds the key: 409 with `Retry-After`.
A call that fails after acquiring releases the key as failed, so a retry runs again.
Keys are per tenant and per route, and are remembered for 24 hours.

Mint, transfer execute and burn make these same calls inside one statement,
`chainworker_api_request` (routes/operations.py); the other POSTs use `run_once`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any
from uuid import UUID

from fastapi import Header
from fastapi.responses import JSONResponse, Response

from chainworker.api.context import ApiContext
from chainworker.api.problems import Problem
from chainworker.api.tokens import Principal
from chainworker.db import idempotency as keys
from chainworker.db.pool import Connection, tenant_transaction

LOCK_SECONDS = 30
REMEMBER_SECONDS = 86_400
RETRY_AFTER_SECONDS = 1
REPLAYED_HEADER = "Idempotent-Replayed"

IdempotencyKey = Annotated[
    str,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=255,
        pattern=r"^[\x21-\x7e]+$",
        description="A unique key per logical operation (e.g. a UUID), reused on retries.",
    ),
]


@dataclass(frozen=True, slots=True)
class Claim:
    key_id: UUID

    async def complete(self, conn: Connection, status: int, body: dict[str, Any]) -> None:
        """Store the response; call inside the transaction that does the work."""
        await keys.complete_key(conn, self.key_id, status, body)


def fingerprint(method: str, path: str, body: dict[str, Any] | None) -> str:
    canonical = json.dumps(body or {}, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(f"{method} {path}\n{canonical}".encode()).hexdigest()


async def _acquire(
    context: ApiContext, principal: Principal, key: str, operation: str, request_hash: str
) -> Claim | Response:
    async with tenant_transaction(context.pool, principal.tenant_id, source="api") as conn:
        # The claim is not flushed on its own commit (see keys.acquire_key).
        row = await keys.acquire_key(
            conn,
            principal.tenant_id,
            key,
            operation,
            request_hash,
            locked_by=str(principal.token_id),
            lock_seconds=LOCK_SECONDS,
            ttl_seconds=REMEMBER_SECONDS,
        )
    outcome = row.outcome
    if outcome == "acquired":
        assert row.key_id is not None
        return Claim(row.key_id)
    if outcome == "cached":
        assert row.response_status is not None
        return JSONResponse(
            row.response_body,
            status_code=row.response_status,
            headers={REPLAYED_HEADER: "true"},
        )
    raise refusal(outcome)


def replay(status: int, body_json: str) -> Response:
    """The stored response of a key that succeeded before, as stored (JSON text)."""
    return Response(
        body_json,
        status_code=status,
        media_type="application/json",
        headers={REPLAYED_HEADER: "true"},
    )


def refusal(outcome: str) -> Problem:
    """The problem for a key that is neither acquired nor cached: hash_mismatch, in_progress."""
    if outcome == "hash_mismatch":
        return Problem(
            "idempotency-key-reused",
            "this Idempotency-Key was used with a different request; use a new key",
        )
    return Problem(
        "idempotency-in-progress",
        "a request with this Idempotency-Key is still running; retry after it ends",
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


async def _release(context: ApiContext, principal: Principal, claim: Claim) -> None:
    async with tenant_transaction(context.pool, principal.tenant_id, source="api") as conn:
        await keys.release_key_failed(conn, claim.key_id)


async def run_once(
    context: ApiContext,
    principal: Principal,
    key: str,
    operation: str,
    request_hash: str,
    work: Callable[[Claim], Awaitable[Response]],
) -> Response:
    """Run `work` at most once per (tenant, key, operation); replay its stored response."""
    claim = await _acquire(context, principal, key, operation, request_hash)
    if isinstance(claim, Response):
        return claim
    try:
        return await work(claim)
    except BaseException:
        # The lock would lapse on its own after LOCK_SECONDS; releasing lets a retry run now.
        with contextlib.suppress(Exception):
            await _release(context, principal, claim)
        raise
