"""Cross-tenant lookups, recorded through chainworker_note_cross_tenant / log_tenant_violation."""

from __future__ import annotations

from chainworker.db.pool import Connection


async def note_cross_tenant(conn: Connection, table: str, key: str, operation: str) -> bool:
    """Record the attempt when `key` exists in `table` under another tenant; whether it did."""
    noted = await conn.fetchval(
        "SELECT chainworker_note_cross_tenant($1, $2, $3)", table, key, operation
    )
    return bool(noted)
