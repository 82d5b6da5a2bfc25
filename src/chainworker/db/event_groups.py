"""The event groups table: record a group's creation before it is sent, find an event's
group, list the live creations, settle them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from chainworker.db.pool import Connection

LIVE = "pending"
CONFIRMED = "confirmed"
SETTLED_STATUSES = frozenset({CONFIRMED, "failed", "expired"})


@dataclass(frozen=True, slots=True)
class GroupRow:
    id: int
    event_id: UUID
    group_mint: str
    status: str
    tx_signature: str
    slot: int | None
    error_message: str | None
    created_at: datetime
    settled_at: datetime | None

    @property
    def is_live(self) -> bool:
        return self.status == LIVE

    @property
    def is_confirmed(self) -> bool:
        return self.status == CONFIRMED


@dataclass(frozen=True, slots=True)
class LiveGroup:
    id: int
    tenant_id: UUID
    event_id: UUID
    group_mint: str
    tx_signature: str
    last_valid_block_height: int
    serialized_tx: bytes
    last_sent_at: datetime | None
    expiry_check_pending: bool


@dataclass(frozen=True, slots=True)
class NewGroup:
    event_id: UUID
    group_mint: str
    tx_signature: str
    blockhash: str
    last_valid_block_height: int
    serialized_tx: bytes


_COLUMNS = """id, event_id, group_mint, status, tx_signature, slot, error_message, created_at,
    settled_at"""


async def record(conn: Connection, tenant_id: UUID, group: NewGroup) -> bool:
    """Record a creation before it is sent; False when the event has a live or confirmed
    one already. Inside a tenant transaction."""
    inserted = await conn.fetchval(
        "INSERT INTO chainworker_event_groups"
        " (tenant_id, event_id, group_mint, tx_signature, blockhash, last_valid_block_height,"
        "  serialized_tx)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7)"
        # No arbiter: two asking at once sign the same bytes, and the second insert may
        # meet the first on its signature as well as on the event: either is "recorded".
        " ON CONFLICT DO NOTHING RETURNING id",
        tenant_id, group.event_id, group.group_mint, group.tx_signature, group.blockhash,
        group.last_valid_block_height, group.serialized_tx,
    )
    return inserted is not None


async def of_events(conn: Connection, event_ids: Sequence[UUID]) -> dict[UUID, GroupRow]:
    """Each event's live or confirmed group creation (at most one each), by event."""
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} FROM chainworker_event_groups"  # noqa: S608 - constant columns
        " WHERE event_id = ANY($1::uuid[]) AND status IN ('pending', 'confirmed')"
        " AND tenant_id = current_tenant_id()",
        sorted(set(event_ids)),
    )
    return {row["event_id"]: GroupRow(**dict(row)) for row in rows}


async def confirmed_mints(conn: Connection) -> list[str]:
    """The tenant's confirmed group mints (one per event that has a group on chain)."""
    rows = await conn.fetch(
        "SELECT group_mint FROM chainworker_event_groups"
        " WHERE tenant_id = current_tenant_id() AND status = $1 ORDER BY group_mint",
        CONFIRMED,
    )
    return [row["group_mint"] for row in rows]


async def latest(conn: Connection, event_id: UUID) -> GroupRow | None:
    """The event's group creation: the live or confirmed one, else the last that ended."""
    row = await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM chainworker_event_groups"  # noqa: S608 - constant columns
        " WHERE event_id = $1 AND tenant_id = current_tenant_id()"
        " ORDER BY status IN ('pending', 'confirmed') DESC, id DESC LIMIT 1",
        event_id,
    )
    return GroupRow(**dict(row)) if row else None


async def creations(conn: Connection, event_id: UUID) -> int:
    """How many creations of the event's group were recorded, whatever became of them."""
    count: int = await conn.fetchval(
        "SELECT count(*) FROM chainworker_event_groups"
        " WHERE event_id = $1 AND tenant_id = current_tenant_id()",
        event_id,
    )
    return count


async def live(conn: Connection, limit: int) -> list[LiveGroup]:
    """Live creations of every tenant, oldest first (the group round's narrow path)."""
    rows = await conn.fetch("SELECT * FROM chainworker_live_event_groups($1)", limit)
    return [LiveGroup(**dict(row)) for row in rows]


async def settle(
    conn: Connection, group_id: int, status: str, *, slot: int | None = None,
    error: str | None = None,
) -> bool:
    """End a live creation as confirmed, failed or expired; False when it was not live.
    Inside its tenant's transaction."""
    if status not in SETTLED_STATUSES:
        raise ValueError(f"{status!r} is not a final group status")
    done = await conn.fetchval(
        "UPDATE chainworker_event_groups"
        " SET status = $2, slot = $3, error_message = $4, settled_at = now()"
        " WHERE id = $1 AND status = 'pending' AND tenant_id = current_tenant_id()"
        " RETURNING id",
        group_id, status, slot, error,
    )
    return done is not None


async def mark_sent(conn: Connection, group_ids: Sequence[int]) -> None:
    await conn.execute(
        "UPDATE chainworker_event_groups SET last_sent_at = now()"
        " WHERE id = ANY($1::bigint[]) AND status = 'pending'"
        " AND tenant_id = current_tenant_id()",
        list(group_ids),
    )


async def mark_expiry_check(conn: Connection, group_id: int) -> None:
    await conn.execute(
        "UPDATE chainworker_event_groups SET expiry_check_pending = true"
        " WHERE id = $1 AND status = 'pending' AND tenant_id = current_tenant_id()",
        group_id,
    )
