"""Demo and test data: a tenant with an event, users and sold tickets, and accepted transfers.

This is what the ticket service and the platform's other services write, not chainworker:
the runtime role may not create tenants, users, events, tickets or transfers, so seeding
runs as the owner (`DATABASE_ADMIN_URL`): pass an owner pool or connection.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TypeAlias
from uuid import UUID, uuid4

import asyncpg

from chainworker.db.pool import Connection, set_context

Owner: TypeAlias = "asyncpg.Pool | Connection"


@asynccontextmanager
async def _transaction(owner: Owner) -> AsyncIterator[Connection]:
    if isinstance(owner, asyncpg.Pool):
        async with owner.acquire() as conn, conn.transaction():
            yield conn
    else:
        async with owner.transaction():
            yield owner


@dataclass(frozen=True)
class Seeded:
    tenant_id: UUID
    event_id: UUID
    user_ids: list[UUID]
    ticket_ids: list[UUID] = field(default_factory=list)

    def as_json(self) -> dict[str, object]:
        return {
            "tenant_id": str(self.tenant_id),
            "event_id": str(self.event_id),
            "user_ids": [str(u) for u in self.user_ids],
            "ticket_ids": [str(t) for t in self.ticket_ids],
        }


async def seed_tenant(
    owner: Owner, *, tickets: int, users: int = 5, tenant_name: str = "Demo Tenant"
) -> Seeded:
    """Create a tenant, an event, `users` users and `tickets` sold tickets spread over them."""
    tenant_id, event_id = uuid4(), uuid4()
    user_ids = [uuid4() for _ in range(max(1, users))]
    async with _transaction(owner) as conn:
        await set_context(conn, tenant_id, actor_type="system", reason="seed", source="seed")
        await conn.execute(
            "INSERT INTO tenants (id, name) VALUES ($1, $2)", tenant_id, tenant_name
        )
        await conn.executemany(
            "INSERT INTO users (id, tenant_id, email) VALUES ($1, $2, $3)",
            [(u, tenant_id, f"user{i}@{tenant_id.hex[:8]}.test") for i, u in enumerate(user_ids)],
        )
        await conn.execute(
            """INSERT INTO events (id, tenant_id, name, starts_at, ends_at)
               VALUES ($1, $2, $3, now() + interval '30 days',
                       now() + interval '30 days 4 hours')""",
            event_id,
            tenant_id,
            f"{tenant_name} Live",
        )
        rows = await conn.fetch(
            """INSERT INTO tickets (tenant_id, event_id, user_id, status, price_cents, price,
                                    face_value, purchased_at)
               SELECT $1, $2, ($3::uuid[])[1 + (n % cardinality($3::uuid[]))], 'sold',
                      5000, 50.00, 50.00, now()
                 FROM generate_series(0, $4 - 1) AS n
               RETURNING id""",
            tenant_id,
            event_id,
            user_ids,
            tickets,
        )
    return Seeded(tenant_id, event_id, user_ids, [row["id"] for row in rows])


async def accepted_transfers(
    owner: Owner, tenant_id: UUID, ticket_ids: list[UUID], to_user: UUID
) -> list[UUID]:
    """Accepted transfers of the given tickets to `to_user` (as the ticket service makes them).

    Tickets `to_user` already holds are skipped.
    """
    async with _transaction(owner) as conn:
        await set_context(conn, tenant_id, actor_type="service", reason="transfer accepted",
                          source="seed")
        rows = await conn.fetch(
            """INSERT INTO ticket_transfers (tenant_id, ticket_id, from_user_id, to_user_id,
                                             status, accepted_at)
               SELECT t.tenant_id, t.id, t.user_id, $2, 'accepted', now()
                 FROM tickets t WHERE t.id = ANY($1::uuid[]) AND t.user_id IS DISTINCT FROM $2
               RETURNING id""",
            ticket_ids,
            to_user,
        )
    return [row["id"] for row in rows]


async def check_in(owner: Owner, tenant_id: UUID, ticket_ids: list[UUID]) -> int:
    """Tickets scanned at the door (as the ticket service marks them): checked_in."""
    async with _transaction(owner) as conn:
        await set_context(conn, tenant_id, actor_type="service", reason="scanned at the door",
                          source="seed")
        result = await conn.execute(
            "UPDATE tickets SET status = 'checked_in' WHERE id = ANY($1::uuid[])", ticket_ids
        )
    return int(result.split()[-1])
