"""The API's POST mint / transfer / burn / metadata in one statement: `chainworker_api_request`
(103, 107; 114 gave it the metadata update's change).

One round trip, one transaction: idempotency key, transfer and ticket check, recorded
request, stored 202 body. See the migration for what each outcome means.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from uuid import UUID

from chainworker.db.pool import Connection
from chainworker.lifecycle.metadata import MetadataChange

_CALL = (
    "SELECT * FROM chainworker_api_request("
    "$1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14::jsonb)"
)


@dataclass(frozen=True, slots=True)
class ApiRequest:
    """What the API asks for: the idempotency claim and the operation."""

    tenant_id: UUID
    key: str
    route: str
    request_hash: str
    locked_by: str
    lock_seconds: int
    ttl_seconds: int
    operation: str
    ticket_id: UUID | None
    transfer_id: UUID | None
    reason: str | None
    allowed: Sequence[str]  # 'status|minted or unminted|transfer status or empty'
    status_url_prefix: str
    changes: MetadataChange | None = None  # a metadata update's change


@dataclass(frozen=True, slots=True)
class ApiOutcome:
    """recorded, cached, hash_mismatch, in_progress, not_found or refused.

    `response_body` is the stored JSON text (recorded and cached), passed on as is.
    """

    outcome: str
    response_status: int | None
    response_body: str | None
    request_id: UUID | None
    created: bool | None
    missing: str | None
    ticket_status: str | None
    token_mint: str | None
    transfer_status: str | None


async def record_api_request(conn: Connection, ask: ApiRequest) -> ApiOutcome:
    """Run the whole call in one statement; call outside a transaction (it is its own)."""
    row = await conn.fetchrow(
        _CALL,
        ask.tenant_id,
        ask.key,
        ask.route,
        ask.request_hash,
        ask.locked_by,
        ask.lock_seconds,
        ask.ttl_seconds,
        ask.operation,
        ask.ticket_id,
        ask.transfer_id,
        ask.reason,
        ask.allowed,
        ask.status_url_prefix,
        json.dumps(ask.changes.as_json()) if ask.changes is not None else None,
    )
    assert row is not None
    return ApiOutcome(**dict(row.items()))
