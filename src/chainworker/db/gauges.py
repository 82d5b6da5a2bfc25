"""Numbers that describe the database, for the dashboards; and the lock electing who reads them.

Every function here crosses tenants through a narrow SECURITY DEFINER function that
returns counts and ages only, never ids.
"""

from __future__ import annotations

from dataclasses import dataclass

from chainworker.db.pool import Connection


@dataclass(frozen=True, slots=True)
class DatabaseFigures:
    live_by_status: dict[str, int]
    oldest_live_seconds: float
    queued_requests: int
    outbox_unprocessed: int
    spend_utilization: dict[str, float]


async def try_lock(conn: Connection, key: int) -> bool:
    """Take the session advisory lock `key` if nobody holds it."""
    return bool(await conn.fetchval("SELECT pg_try_advisory_lock($1)", key))


async def unlock(conn: Connection, key: int) -> None:
    await conn.execute("SELECT pg_advisory_unlock($1)", key)


async def read_figures(conn: Connection) -> DatabaseFigures:
    live = await conn.fetch("SELECT * FROM chainworker_live_summary()")
    backlog = await conn.fetchrow("SELECT * FROM chainworker_backlog()")
    spend = await conn.fetch("SELECT * FROM chainworker_spend_utilization()")
    return DatabaseFigures(
        live_by_status={row["status"]: int(row["live_count"]) for row in live},
        oldest_live_seconds=max((float(row["oldest_seconds"]) for row in live), default=0.0),
        queued_requests=int(backlog["queued_requests"]) if backlog else 0,
        outbox_unprocessed=int(backlog["outbox_unprocessed"]) if backlog else 0,
        spend_utilization={row["period"]: float(row["ratio"]) for row in spend},
    )
