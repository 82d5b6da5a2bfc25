"""Cross-tenant lookups, recorded through chainworker_note_cross_tenant (bounded per token)."""

from __future__ import annotations

from typing import Literal
from uuid import UUID

from chainworker.db.pool import Connection

Noted = Literal["recorded", "suppressed", "none"]


async def note_cross_tenant(
    conn: Connection, table: str, key: str, operation: str, token_id: UUID
) -> Noted:
    """Record the attempt when `key` exists in `table` under another tenant.

    'recorded'; 'suppressed' when the token already has its share of recorded attempts
    this minute; 'none' when nothing with that key exists elsewhere.
    """
    noted = await conn.fetchval(
        "SELECT chainworker_note_cross_tenant($1, $2, $3, $4)", table, key, operation, token_id
    )
    if noted not in ("recorded", "suppressed", "none"):
        raise ValueError(f"unexpected answer {noted!r} from chainworker_note_cross_tenant")
    answer: Noted = noted
    return answer
