"""Queries on multisig_approval_requests, multisig_approvals and multisig_rejections."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal
from uuid import UUID

import asyncpg

from chainworker.db.pool import Connection

ApprovalStatus = Literal["pending", "approved", "rejected", "expired", "executed"]


@dataclass(frozen=True, slots=True)
class ApprovalRequestRow:
    id: UUID
    tenant_id: UUID
    operation_type: str
    resource_type: str | None
    resource_id: UUID | None
    requested_by: UUID
    required_approvals: int
    current_approvals: int
    status: ApprovalStatus
    payload: dict[str, Any]
    expires_at: datetime
    executed_at: datetime | None


def _request_row(row: asyncpg.Record) -> ApprovalRequestRow:
    payload = row["payload"]
    return ApprovalRequestRow(
        id=row["id"],
        tenant_id=row["tenant_id"],
        operation_type=row["operation_type"],
        resource_type=row["resource_type"],
        resource_id=row["resource_id"],
        requested_by=row["requested_by"],
        required_approvals=row["required_approvals"],
        current_approvals=row["current_approvals"],
        status=row["status"],
        payload=json.loads(payload) if isinstance(payload, str) else payload,
        expires_at=row["expires_at"],
        executed_at=row["executed_at"],
    )


async def create_request(
    conn: Connection,
    tenant_id: UUID,
    *,
    operation_type: str,
    resource_type: str,
    resource_id: UUID,
    requested_by: UUID | None,
    required_approvals: int,
    payload: dict[str, Any],
    ttl_seconds: float,
) -> ApprovalRequestRow:
    """A new pending request that expires `ttl_seconds` from now."""
    row = await conn.fetchrow(
        """INSERT INTO multisig_approval_requests
               (tenant_id, operation_type, resource_type, resource_id, requested_by,
                required_approvals, payload, expires_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb,
                   now() + make_interval(secs => $8))
           RETURNING *""",
        tenant_id,
        operation_type,
        resource_type,
        resource_id,
        requested_by,
        required_approvals,
        json.dumps(payload),
        ttl_seconds,
    )
    assert row is not None
    return _request_row(row)


async def live_request_id(conn: Connection, resource_id: UUID, operation_type: str) -> UUID | None:
    """The pending, unexpired request of this operation on the resource, if any."""
    value = await conn.fetchval(
        """SELECT id FROM multisig_approval_requests
            WHERE resource_id = $1 AND operation_type = $2 AND status = 'pending'
              AND tenant_id = current_tenant_id()
              AND expires_at > now()""",
        resource_id,
        operation_type,
    )
    return value if isinstance(value, UUID) else None


async def lock_request(
    conn: Connection, request_id: UUID, resource_id: UUID, operation_type: str
) -> ApprovalRequestRow | None:
    """The request, locked for the rest of the transaction; None when not visible."""
    row = await conn.fetchrow(
        """SELECT * FROM multisig_approval_requests
            WHERE id = $1 AND resource_id = $2 AND operation_type = $3
              AND tenant_id = current_tenant_id() FOR UPDATE""",
        request_id,
        resource_id,
        operation_type,
    )
    return _request_row(row) if row else None


async def expire_if_due(conn: Connection, request_id: UUID) -> None:
    """A pending request past its expires_at becomes expired."""
    await conn.execute(
        """UPDATE multisig_approval_requests SET status = 'expired', version = version + 1
            WHERE id = $1 AND status = 'pending' AND expires_at <= now()""",
        request_id,
    )


async def mark_executed(conn: Connection, request_id: UUID, burn_request_ids: list[UUID]) -> None:
    """Executed, with the chain requests it recorded added to its payload."""
    await conn.execute(
        """UPDATE multisig_approval_requests
              SET status = 'executed', executed_at = now(), version = version + 1,
                  payload = payload || jsonb_build_object('burn_request_ids', $2::text[])
            WHERE id = $1""",
        request_id,
        [str(i) for i in burn_request_ids],
    )


async def approver_ids(conn: Connection, request_id: UUID) -> list[UUID]:
    """The request's approvers, first approval first."""
    rows = await conn.fetch(
        """SELECT approver_id FROM multisig_approvals
            WHERE request_id = $1 AND tenant_id = current_tenant_id() ORDER BY created_at""",
        request_id,
    )
    return [row["approver_id"] for row in rows]


async def has_voted(
    conn: Connection, request_id: UUID, voter_id: UUID | None, *, approve: bool
) -> bool:
    """Whether this admin already approved (or, approve=False, rejected) the request."""
    if approve:
        found = await conn.fetchval(
            "SELECT 1 FROM multisig_approvals WHERE request_id = $1 AND approver_id = $2",
            request_id,
            voter_id,
        )
    else:
        found = await conn.fetchval(
            "SELECT 1 FROM multisig_rejections WHERE request_id = $1 AND rejector_id = $2",
            request_id,
            voter_id,
        )
    return bool(found)


async def record_vote(
    conn: Connection,
    tenant_id: UUID,
    request_id: UUID,
    voter_id: UUID | None,
    comment: str | None,
    *,
    approve: bool,
) -> None:
    """An approval (with its comment) or a rejection (with its reason)."""
    if approve:
        await conn.execute(
            """INSERT INTO multisig_approvals (tenant_id, request_id, approver_id, comment)
               VALUES ($1, $2, $3, $4)""",
            tenant_id,
            request_id,
            voter_id,
            comment,
        )
    else:
        await conn.execute(
            """INSERT INTO multisig_rejections (tenant_id, request_id, rejector_id, reason)
               VALUES ($1, $2, $3, $4)""",
            tenant_id,
            request_id,
            voter_id,
            comment,
        )
