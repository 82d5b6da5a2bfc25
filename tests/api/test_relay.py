"""The outbox relay: two relays, each request recorded once, poison rows retried then dropped."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import asyncpg
import pytest
from arq.connections import ArqRedis

from chainworker.jobs.queue import ArqQueue
from chainworker.pipeline.relay import relay_once
from tests.api.conftest import accepted_transfer, make_minted, new_tenant
from tests.conftest import own_queue_name

MAX_ATTEMPTS = 2


async def _outbox(
    admin: asyncpg.Connection,
    tenant_id: uuid.UUID,
    event_type: str,
    aggregate_type: str,
    aggregate_id: uuid.UUID,
    payload: Any = None,
) -> int:
    outbox_id: int = await admin.fetchval(
        """INSERT INTO outbox (tenant_id, aggregate_type, aggregate_id, event_type, payload)
           VALUES ($1, $2, $3, $4, $5::jsonb) RETURNING id""",
        tenant_id,
        aggregate_type,
        aggregate_id,
        event_type,
        json.dumps(payload or {}),
    )
    return outbox_id


@pytest.fixture
def queue() -> str:
    return own_queue_name("relay")


async def test_two_relays_record_each_request_once(
    module_db: Any, pool: asyncpg.Pool, admin: asyncpg.Connection, arq: ArqRedis, queue: str
) -> None:
    a, b = await new_tenant(pool, admin, tickets=30), await new_tenant(pool, admin, tickets=6)
    await make_minted(admin, b.seeded.ticket_ids[:4])
    good: list[int] = []
    for ticket in a.seeded.ticket_ids:
        good.append(await _outbox(admin, a.id, "nft.mint_requested", "ticket", ticket))
    # The same mint asked twice collapses onto one request.
    good.append(await _outbox(admin, a.id, "nft.mint_requested", "ticket", a.seeded.ticket_ids[0]))
    for ticket in b.seeded.ticket_ids[:2]:
        good.append(
            await _outbox(admin, b.id, "nft.burn_requested", "ticket", ticket, {"reason": "refund"})
        )
    transfer = await accepted_transfer(admin, b.seeded.ticket_ids[2], b.seeded.user_ids[0])
    good.append(await _outbox(admin, b.id, "nft.transfer_requested", "ticket_transfer", transfer))
    poison = [
        await _outbox(admin, b.id, "nft.burn_requested", "ticket", b.seeded.ticket_ids[3]),
        await _outbox(admin, b.id, "nft.mint_requested", "ticket", uuid.uuid4()),
        await _outbox(admin, b.id, "nft.mint_requested", "ticket_transfer", b.seeded.ticket_ids[4]),
        await _outbox(admin, b.id, "nft.transfer_requested", "ticket_transfer", uuid.uuid4()),
        await _outbox(admin, b.id, "nft.mint_requested", "ticket", b.seeded.ticket_ids[5], [1]),
    ]
    # Chainworker's own events are for the ticket service, never for the relay.
    own = await _outbox(admin, a.id, "ticket.minted", "ticket", a.seeded.ticket_ids[1])

    two_pools = [
        await asyncpg.create_pool(module_db.app_dsn, min_size=1, max_size=2) for _ in range(2)
    ]
    try:
        results = await asyncio.gather(
            *(
                relay_once(
                    p,
                    ArqQueue(arq, queue),
                    max_attempts=MAX_ATTEMPTS,
                    retry_seconds=600,
                    batch_size=8,
                )
                for p in two_pools
                for _ in range(4)
            )
        )
        assert sum(r.claimed for r in results) == len(good) + len(poison)
        assert sum(r.recorded for r in results) == len(good)
    finally:
        for p in two_pools:
            await p.close()

    processed = await admin.fetch(
        "SELECT id, attempts, last_error, processed_at FROM outbox WHERE id = ANY($1::bigint[])",
        good,
    )
    assert all(
        r["processed_at"] and r["attempts"] == 1 and r["last_error"] is None for r in processed
    )
    requests = await admin.fetch(
        "SELECT tenant_id, ticket_id, operation, reason, transfer_id FROM chain_requests"
        " WHERE source = 'outbox' AND tenant_id = ANY($1::uuid[])",
        [a.id, b.id],
    )
    assert len(requests) == len(a.seeded.ticket_ids) + 3
    assert len({(r["ticket_id"], r["operation"]) for r in requests}) == len(requests)
    assert {r["transfer_id"] for r in requests if r["operation"] == "transfer"} == {transfer}
    assert {r["reason"] for r in requests if r["operation"] == "burn"} == {"refund"}
    assert await arq.zcard(queue) == len(requests), "one job per new request"

    failed = await admin.fetch(
        "SELECT attempts, last_error, processed_at, quarantined_at,"
        " available_at > now() + interval '5 minutes' AS pushed"
        " FROM outbox WHERE id = ANY($1::bigint[]) ORDER BY id",
        poison,
    )
    assert all(r["attempts"] == 1 and r["last_error"] for r in failed)
    errors = [r["last_error"] for r in failed]
    assert "reason" in errors[0] and "no ticket" in errors[1]
    assert "aggregate_type" in errors[2] and "no transfer" in errors[3]
    assert "JSON object" in errors[4]
    # What can never become a request is set aside at once; what names a ticket or
    # transfer not there (yet) waits its backoff.
    lasting = [0, 2, 4]
    for i, row in enumerate(failed):
        if i in lasting:
            assert row["quarantined_at"] and row["processed_at"], errors[i]
        else:
            assert row["pushed"] and row["processed_at"] is None and row["quarantined_at"] is None

    # Second round, once due: the retried rows reach MAX_ATTEMPTS and are set aside too.
    retried = [poison[i] for i in range(len(poison)) if i not in lasting]
    await admin.execute(
        "UPDATE outbox SET available_at = now() WHERE id = ANY($1::bigint[])", retried
    )
    again = await relay_once(pool, ArqQueue(arq, queue), max_attempts=MAX_ATTEMPTS, retry_seconds=0)
    assert again.failed == len(retried) and again.recorded == 0
    assert again.quarantined == len(retried)
    given_up = await admin.fetch(
        "SELECT attempts, last_error, processed_at, quarantined_at FROM outbox"
        " WHERE id = ANY($1::bigint[])",
        retried,
    )
    assert all(
        r["attempts"] == MAX_ATTEMPTS
        and r["processed_at"]
        and r["quarantined_at"]
        and r["last_error"]
        for r in given_up
    )
    assert (
        await relay_once(pool, ArqQueue(arq, queue), max_attempts=MAX_ATTEMPTS, retry_seconds=0)
    ).claimed == 0
    untouched = await admin.fetchrow("SELECT attempts, processed_at FROM outbox WHERE id = $1", own)
    assert untouched is not None and tuple(untouched) == (0, None)


async def test_a_failing_row_waits_its_backoff(
    pool: asyncpg.Pool, admin: asyncpg.Connection, arq: ArqRedis, queue: str
) -> None:
    tenant = await new_tenant(pool, admin, tickets=1)
    bad = await _outbox(admin, tenant.id, "nft.mint_requested", "ticket", uuid.uuid4())
    first = await relay_once(pool, ArqQueue(arq, queue), max_attempts=5, retry_seconds=60)
    assert first.failed >= 1
    good = await _outbox(
        admin, tenant.id, "nft.mint_requested", "ticket", tenant.seeded.ticket_ids[0]
    )
    second = await relay_once(pool, ArqQueue(arq, queue), max_attempts=5, retry_seconds=60)
    assert second.recorded == 1 and second.failed == 0, "the bad row is not retried yet"
    row = await admin.fetchrow(
        "SELECT attempts, processed_at, available_at - now() AS wait FROM outbox WHERE id = $1", bad
    )
    assert row["attempts"] == 1 and row["processed_at"] is None
    assert row["wait"].total_seconds() > 50
    assert await admin.fetchval("SELECT processed_at FROM outbox WHERE id = $1", good)


def _nested(depth: int) -> str:
    return '{"reason": "refund", "x": ' + '{"a": ' * depth + "1" + "}" * depth + "}"


async def test_poison_payloads_are_set_aside_and_the_batch_goes_on(
    pool: asyncpg.Pool, admin: asyncpg.Connection, arq: ArqRedis, queue: str
) -> None:
    """A payload nested 5,000 deep, one of 5 MB and one of the wrong type, first in the
    queue, beside good rows of another tenant: the good rows are recorded in the same
    round, the poison is quarantined with its reason and never claimed again."""
    a, b = await new_tenant(pool, admin, tickets=2), await new_tenant(pool, admin, tickets=3)
    await make_minted(admin, a.seeded.ticket_ids)
    poison_payloads = [
        _nested(5000),
        json.dumps({"reason": "refund", "blob": "x" * 5_000_000}),
        json.dumps("refund"),
    ]
    poison = [
        await admin.fetchval(
            """INSERT INTO outbox (tenant_id, aggregate_type, aggregate_id, event_type, payload,
                                   available_at)
               VALUES ($1, 'ticket', $2, 'nft.burn_requested', $3::jsonb,
                       now() - interval '1 hour') RETURNING id""",
            a.id,
            ticket,
            payload,
        )
        for ticket, payload in zip(
            [*a.seeded.ticket_ids, a.seeded.ticket_ids[0]], poison_payloads, strict=True
        )
    ]
    good = [
        await _outbox(admin, b.id, "nft.mint_requested", "ticket", ticket)
        for ticket in b.seeded.ticket_ids
    ]
    result = await relay_once(
        pool, ArqQueue(arq, queue), max_attempts=MAX_ATTEMPTS, retry_seconds=600
    )
    assert result.claimed == len(poison) + len(good)
    assert result.recorded == len(good) and result.quarantined == len(poison)
    assert await admin.fetchval(
        "SELECT count(*) FROM chain_requests WHERE tenant_id = $1 AND source = 'outbox'", b.id
    ) == len(good)
    rows = await admin.fetch(
        "SELECT last_error, quarantined_at, processed_at FROM outbox WHERE id = ANY($1::bigint[])"
        " ORDER BY id",
        poison,
    )
    assert [r["last_error"] for r in rows] == [
        "payload is nested deeper than 16 levels",
        "payload is larger than 16 KiB",
        "payload must be a JSON object",
    ]
    assert all(r["quarantined_at"] and r["processed_at"] for r in rows)
    assert (
        await relay_once(pool, ArqQueue(arq, queue), max_attempts=5, retry_seconds=0)
    ).claimed == 0
