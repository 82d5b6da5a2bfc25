"""Crash safety and concurrency: SIGKILLed workers, two workers, a flushed Redis."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path
from uuid import UUID

import asyncpg
import pytest
from redis.asyncio import Redis
from solders.pubkey import Pubkey

from chainworker import services
from chainworker.chain.keys import load_mint_seed, mint_keypair
from chainworker.chain.rpc import SolanaRpc
from chainworker.config import load_settings
from chainworker.localnet.process import LocalnetProcess
from tests.helpers import Stack, wait_for
from tests.jobs.test_lifecycle_e2e import request_statuses, settled


async def assert_minted_exactly_once(
    admin: asyncpg.Connection, stack: Stack, rpc_url: str, tenant: str, tickets: list[str]
) -> None:
    unsettled = await admin.fetch(
        """SELECT r.status, r.outcome_code, r.outcome_message, p.attempt, p.status AS tx_status
             FROM chain_requests r LEFT JOIN pending_transactions p ON p.request_id = r.id
            WHERE r.status <> 'confirmed'"""
    )
    assert not unsettled, [dict(row) for row in unsettled]
    assert await request_statuses(admin, tenant) == {"confirmed": len(tickets)}
    per_ticket = await admin.fetch(
        """SELECT ticket_id, count(*) FILTER (WHERE status = 'confirmed') AS confirmed,
                  count(*) FILTER (WHERE status IN ('pending', 'confirming')) AS live
             FROM pending_transactions GROUP BY ticket_id"""
    )
    assert len(per_ticket) == len(tickets)
    assert all(row["confirmed"] == 1 and row["live"] == 0 for row in per_ticket)
    seed = load_mint_seed(load_settings(state_dir=stack.state_dir))
    rows = await admin.fetch("SELECT id, token_mint FROM tickets WHERE tenant_id = $1",
                             UUID(tenant))
    async with SolanaRpc([rpc_url]) as rpc:
        for row in rows:
            expected = mint_keypair(seed, UUID(tenant), row["id"]).pubkey()
            assert row["token_mint"] == str(expected)
            state = await rpc.get_mint_state(Pubkey.from_string(row["token_mint"]))
            assert state is not None and state.supply == 1


@pytest.mark.slow
async def test_sigkilled_workers_mint_every_ticket_exactly_once(
    stack: Stack, admin: asyncpg.Connection, localnet_faults: LocalnetProcess
) -> None:
    seeded = stack.cli_json("seed", "--tickets", "200", "--users", "20")
    tenant, tickets = seeded["tenant_id"], seeded["ticket_ids"]
    stack.cli("enqueue", "mint", "--tenant", tenant, "--ticket", "-", stdin="\n".join(tickets))
    chance = random.Random(20261124)
    kills = 0
    # A killed worker's jobs stay locked for the job timeout + 10 s: keep it short here.
    stack.extra["JOB_TIMEOUT_SECONDS"] = "5"
    worker = stack.worker()
    try:
        # Kill at random moments: between record and send, between send and confirm, anywhere.
        for _ in range(8):
            await asyncio.sleep(chance.uniform(0.8, 2.0))
            worker.kill()
            kills += 1
            worker = stack.worker()
        await wait_for(lambda: settled(admin, tenant, len(tickets)), 120, "every mint")
    finally:
        worker.stop()
    assert kills == 8
    await assert_minted_exactly_once(admin, stack, localnet_faults.rpc_url, tenant, tickets)


@pytest.mark.slow
async def test_two_workers_and_every_ticket_asked_twice(
    stack: Stack, admin: asyncpg.Connection, localnet_faults: LocalnetProcess
) -> None:
    seeded = stack.cli_json("seed", "--tickets", "200", "--users", "20")
    tenant, tickets = seeded["tenant_id"], seeded["ticket_ids"]
    workers = [stack.worker(), stack.worker()]
    try:
        ids = "\n".join(tickets)
        await asyncio.gather(
            asyncio.to_thread(stack.cli, "enqueue", "mint", "--tenant", tenant, "--ticket", "-",
                              stdin=ids),
            asyncio.to_thread(stack.cli, "enqueue", "mint", "--tenant", tenant, "--ticket", "-",
                              stdin=ids),
        )
        await wait_for(lambda: settled(admin, tenant, len(tickets)), 120, "every mint")
    finally:
        for worker in workers:
            worker.stop()
    assert await admin.fetchval("SELECT count(*) FROM chain_requests") == len(tickets)
    await assert_minted_exactly_once(admin, stack, localnet_faults.rpc_url, tenant, tickets)


@pytest.mark.slow
async def test_sweeper_restores_work_lost_with_redis(
    stack: Stack, admin: asyncpg.Connection, localnet_faults: LocalnetProcess, tmp_path: Path
) -> None:
    # A Redis of this test's own, so flushing it touches nobody else's keys.
    valkey_dir = tmp_path / "valkey"
    url = await asyncio.to_thread(services.start_embedded_valkey, valkey_dir)
    try:
        stack.redis_url = url
        seeded = stack.cli_json("seed", "--tickets", "60")
        tenant, tickets = seeded["tenant_id"], seeded["ticket_ids"]
        stack.cli("enqueue", "mint", "--tenant", tenant, "--ticket", "-",
                  stdin="\n".join(tickets))
        client = Redis.from_url(url)
        try:
            assert await client.zcard(stack.queue) == len(tickets)
            await client.flushall()  # every queued job is gone before any worker saw it
        finally:
            await client.aclose()
        worker = stack.worker()
        try:
            await wait_for(lambda: settled(admin, tenant, len(tickets)), 90, "restored work")
        finally:
            worker.stop()
    finally:
        services.stop_embedded_valkey(valkey_dir)
    await assert_minted_exactly_once(admin, stack, localnet_faults.rpc_url, tenant, tickets)
