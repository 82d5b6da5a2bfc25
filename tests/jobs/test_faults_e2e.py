"""The lifecycle under faults the localnet injects: drops, expiry, retries, errors, RPC storms."""

from __future__ import annotations

import json
from uuid import UUID, uuid4

import asyncpg
import pytest
from arq.connections import RedisSettings
from solders.pubkey import Pubkey

from chainworker.chain.keys import (
    custodial_wallet,
    load_custodial_seed,
    load_mint_seed,
    mint_keypair,
)
from chainworker.chain.rpc import SolanaRpc
from chainworker.config import load_settings
from chainworker.jobs.codec import create_arq_pool
from chainworker.localnet.process import LocalnetProcess, free_port
from tests.helpers import Stack, wait_for
from tests.jobs.payloads import job, queue_raw
from tests.jobs.test_lifecycle_e2e import request_statuses, settled


async def attempts_of(admin: asyncpg.Connection, ticket: str) -> list[tuple[int, str]]:
    rows = await admin.fetch(
        "SELECT attempt, status FROM pending_transactions WHERE ticket_id = $1 ORDER BY attempt",
        UUID(ticket),
    )
    return [(row["attempt"], row["status"]) for row in rows]


async def live_attempt(admin: asyncpg.Connection, ticket: str, attempt: int) -> bool:
    return bool(await admin.fetchval(
        """SELECT count(*) FROM pending_transactions
            WHERE ticket_id = $1 AND attempt = $2 AND status IN ('pending', 'confirming')""",
        UUID(ticket), attempt,
    ))


async def test_dropped_sends_are_rebroadcast_and_land(
    stack: Stack, admin: asyncpg.Connection, localnet_faults: LocalnetProcess
) -> None:
    localnet_faults.set_faults(drop_first_sends=2)
    seeded = stack.cli_json("seed", "--tickets", "3")
    tenant = seeded["tenant_id"]
    worker = stack.worker()
    try:
        stack.cli("enqueue", "mint", "--tenant", tenant, "--ticket", "-",
                  stdin="\n".join(seeded["ticket_ids"]))
        await wait_for(lambda: settled(admin, tenant, 3), 60, "mints through dropped sends")
    finally:
        worker.stop()
    assert await request_statuses(admin, tenant) == {"confirmed": 3}
    sends = await admin.fetch("SELECT attempt, send_count FROM pending_transactions")
    assert all(row["attempt"] == 1 and row["send_count"] >= 3 for row in sends), sends


async def test_expired_blockhash_is_replaced_by_a_new_attempt(
    stack: Stack, admin: asyncpg.Connection, localnet_faults: LocalnetProcess
) -> None:
    localnet_faults.set_faults(drop_rate=1.0)
    seeded = stack.cli_json("seed", "--tickets", "1")
    tenant, ticket = seeded["tenant_id"], seeded["ticket_ids"][0]
    worker = stack.worker()
    try:
        stack.cli("enqueue", "mint", "--tenant", tenant, "--ticket", ticket)
        await wait_for(lambda: live_attempt(admin, ticket, 1), 30, "the first attempt")
        # The first attempt never lands; the chain moves past its blockhash.
        localnet_faults.set_faults(drop_rate=0.0, warp_slots=200)
        await wait_for(lambda: settled(admin, tenant, 1), 60, "the replacement to confirm")
    finally:
        worker.stop()
    assert await attempts_of(admin, ticket) == [(1, "replaced"), (2, "confirmed")]
    parent = await admin.fetchval(
        """SELECT p.attempt FROM pending_transactions c JOIN pending_transactions p
              ON p.id = c.parent_tx_id WHERE c.ticket_id = $1 AND c.attempt = 2""",
        UUID(ticket),
    )
    assert parent == 1
    assert await admin.fetchval("SELECT status FROM tickets WHERE id = $1", UUID(ticket)) == (
        "minted"
    )


async def test_retries_exhausted_leave_the_ticket_unchanged(
    stack: Stack, admin: asyncpg.Connection, localnet_faults: LocalnetProcess
) -> None:
    localnet_faults.set_faults(drop_rate=1.0)
    seeded = stack.cli_json("seed", "--tickets", "1")
    tenant, ticket = seeded["tenant_id"], seeded["ticket_ids"][0]
    worker = stack.worker(MAX_RETRIES="1")
    try:
        stack.cli("enqueue", "mint", "--tenant", tenant, "--ticket", ticket)
        await wait_for(lambda: live_attempt(admin, ticket, 1), 30, "the first attempt")
        localnet_faults.set_faults(warp_slots=200)
        await wait_for(lambda: live_attempt(admin, ticket, 2), 30, "the second attempt")
        localnet_faults.set_faults(warp_slots=200)
        await wait_for(lambda: settled(admin, tenant, 1), 30, "the request to expire")
    finally:
        worker.stop()
    assert await attempts_of(admin, ticket) == [(1, "replaced"), (2, "expired")]
    assert await request_statuses(admin, tenant) == {"expired": 1}
    row = await admin.fetchrow("SELECT status, token_mint FROM tickets WHERE id = $1", UUID(ticket))
    assert (row["status"], row["token_mint"]) == ("sold", None)
    event = await admin.fetchrow(
        "SELECT payload FROM outbox WHERE event_type = 'ticket.chain_failed' AND aggregate_id = $1",
        UUID(ticket),
    )
    assert json.loads(event["payload"])["code"] == "expired"


async def test_on_chain_error_is_recorded_with_its_code(
    stack: Stack, admin: asyncpg.Connection
) -> None:
    seeded = stack.cli_json("seed", "--tickets", "1")
    tenant, ticket = seeded["tenant_id"], seeded["ticket_ids"][0]
    # The database believes in a mint that does not exist on chain, held in the user's
    # custodial wallet (only the platform moves those, so it is not read back before the
    # first attempt): the burn must fail on chain.
    bogus_mint = str(Pubkey.from_bytes(uuid4().bytes * 2))
    seed = load_custodial_seed(load_settings(state_dir=stack.state_dir))
    holder = custodial_wallet(seed, UUID(tenant), UUID(seeded["user_ids"][0]))
    await admin.execute(
        """UPDATE tickets SET status = 'minted', token_mint = $2, wallet_address = $3
            WHERE id = $1""",
        UUID(ticket), bogus_mint, str(holder),
    )
    worker = stack.worker()
    try:
        stack.cli("enqueue", "burn", "--tenant", tenant, "--ticket", ticket, "--reason", "revoke")
        await wait_for(lambda: settled(admin, tenant, 1), 60, "the burn to fail")
    finally:
        worker.stop()
    request = await admin.fetchrow("SELECT status, outcome_code FROM chain_requests")
    assert request["status"] == "failed"
    assert request["outcome_code"].startswith("InstructionError:")
    tx = await admin.fetchrow(
        "SELECT status, error_code, error_message, tx_signature, slot FROM pending_transactions"
    )
    assert tx["status"] == "failed" and tx["error_code"] == request["outcome_code"]
    assert tx["error_message"]
    # A failed landing is in a block (it paid its fee there): its slot is the chain's.
    async with SolanaRpc([stack.rpc_urls]) as rpc:
        [status] = await rpc.signature_statuses([tx["tx_signature"]])
    assert status is not None and status.err is not None
    assert tx["slot"] == status.slot
    assert await admin.fetchval("SELECT status FROM tickets WHERE id = $1", UUID(ticket)) == (
        "minted"
    )


async def test_rate_limit_storm_and_a_dead_endpoint_lose_nothing(
    stack: Stack, admin: asyncpg.Connection, localnet_faults: LocalnetProcess
) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    stack.rpc_urls = f"{dead},{localnet_faults.rpc_url}"
    seeded = stack.cli_json("seed", "--tickets", "10")
    tenant = seeded["tenant_id"]
    localnet_faults.set_faults(http_error_rate=0.3, http_error_status=429)
    worker = stack.worker(RPC_TIMEOUT_SECONDS="1")
    try:
        stack.cli("enqueue", "mint", "--tenant", tenant, "--ticket", "-",
                  stdin="\n".join(seeded["ticket_ids"][:5]))
        await wait_for(lambda: settled(admin, tenant, 5), 60, "mints through 429s")
        localnet_faults.set_faults(http_error_status=503)
        stack.cli("enqueue", "mint", "--tenant", tenant, "--ticket", "-",
                  stdin="\n".join(seeded["ticket_ids"][5:]))
        await wait_for(lambda: settled(admin, tenant, 10), 60, "mints through 503s")
    finally:
        worker.stop()
    assert await request_statuses(admin, tenant) == {"confirmed": 10}


async def test_spend_limit_refuses_and_leaves_the_ticket(
    stack: Stack, admin: asyncpg.Connection
) -> None:
    seeded = stack.cli_json("seed", "--tickets", "1")
    tenant, ticket = seeded["tenant_id"], seeded["ticket_ids"][0]
    await admin.execute(
        """INSERT INTO spending_limits (tenant_id, user_id, currency, per_transaction_limit,
                                        daily_limit, weekly_limit, monthly_limit)
           VALUES ($1, NULL, 'LAM', 1000, 1000, 1000, 1000)""",
        UUID(tenant),
    )
    worker = stack.worker()
    try:
        stack.cli("enqueue", "mint", "--tenant", tenant, "--ticket", ticket)
        await wait_for(lambda: settled(admin, tenant, 1), 30, "the refusal")
    finally:
        worker.stop()
    request = await admin.fetchrow(
        "SELECT status, outcome_code, outcome_message FROM chain_requests"
    )
    assert (request["status"], request["outcome_code"]) == ("refused", "spend_limit")
    assert "per-transaction limit" in request["outcome_message"]
    assert await admin.fetchval("SELECT count(*) FROM pending_transactions") == 0
    assert await admin.fetchval("SELECT status FROM tickets WHERE id = $1", UUID(ticket)) == "sold"


async def test_jobs_never_cross_tenants_and_bad_payloads_change_nothing(
    stack: Stack, admin: asyncpg.Connection
) -> None:
    a = stack.cli_json("seed", "--tickets", "1", "--tenant-name", "A")
    b = stack.cli_json("seed", "--tickets", "1", "--tenant-name", "B")
    # Tenant A asks to mint tenant B's ticket. The CLI refuses to record it; a request row
    # written past it (by the owner, as a faulty ticket service could) is refused by the
    # worker, and B stays untouched.
    refused_cli = stack.cli("enqueue", "mint", "--tenant", a["tenant_id"], "--ticket",
                            b["ticket_ids"][0], check=False)
    assert refused_cli == ""
    assert await admin.fetchval(
        "SELECT count(*) FROM chain_requests WHERE tenant_id = $1", UUID(a["tenant_id"])
    ) == 0
    a_request = await admin.fetchval(
        """INSERT INTO chain_requests (tenant_id, ticket_id, operation)
           VALUES ($1, $2, 'mint') RETURNING id""",
        UUID(a["tenant_id"]), UUID(b["ticket_ids"][0]),
    )
    b_request = stack.cli_json("enqueue", "mint", "--tenant", b["tenant_id"], "--ticket",
                               b["ticket_ids"][0])[0]["request_id"]
    arq = await create_arq_pool(RedisSettings.from_dsn(stack.redis_url))
    try:
        # A job naming B's request under A's tenant, and jobs with garbage payloads (the
        # codec would not write one: it is written raw).
        await arq.enqueue_job("mint_ticket", str(a_request), a["tenant_id"],
                              _queue_name=stack.queue)
        await arq.enqueue_job("mint_ticket", b_request, a["tenant_id"], _queue_name=stack.queue)
        garbage = json.dumps(job(a=["not-a-uuid", "x"])).encode()
        await queue_raw(arq, stack.queue, str(uuid4()), garbage)
        await arq.enqueue_job("burn_ticket", b_request, b["tenant_id"], _queue_name=stack.queue)
    finally:
        await arq.aclose()
    worker = stack.worker()
    try:
        await wait_for(lambda: settled(admin, a["tenant_id"], 1), 30, "A's refusal")
        await wait_for(lambda: settled(admin, b["tenant_id"], 1), 60, "B's mint")
    finally:
        worker.stop()
    refused = await admin.fetchrow(
        "SELECT status, outcome_code FROM chain_requests WHERE tenant_id = $1",
        UUID(a["tenant_id"]),
    )
    assert (refused["status"], refused["outcome_code"]) == ("refused", "unknown_ticket")
    minted = await admin.fetch(
        "SELECT tenant_id FROM pending_transactions WHERE ticket_id = $1",
        UUID(b["ticket_ids"][0]),
    )
    assert [row["tenant_id"] for row in minted] == [UUID(b["tenant_id"])]
    assert await request_statuses(admin, b["tenant_id"]) == {"confirmed": 1}
    assert "job dead-lettered" in worker.output()


@pytest.mark.parametrize("squatter_lamports", [10**9, 890_880])
async def test_a_squatted_mint_address_is_taken_over_by_the_next_attempt(
    stack: Stack, admin: asyncpg.Connection, localnet_faults: LocalnetProcess,
    squatter_lamports: int,
) -> None:
    seeded = stack.cli_json("seed", "--tickets", "1")
    tenant, ticket = seeded["tenant_id"], seeded["ticket_ids"][0]
    # Someone funds the ticket's mint address (more than its rent, or the least it can):
    # CreateAccount fails, and the next attempt allocates and assigns the account.
    seed = load_mint_seed(load_settings(state_dir=stack.state_dir))
    address = mint_keypair(seed, UUID(tenant), UUID(ticket)).pubkey()
    async with SolanaRpc([localnet_faults.rpc_url]) as rpc:
        await rpc.request_airdrop(address, squatter_lamports)
        worker = stack.worker()
        try:
            stack.cli("enqueue", "mint", "--tenant", tenant, "--ticket", ticket)
            await wait_for(lambda: settled(admin, tenant, 1), 60, "the mint")
        finally:
            worker.stop()
        state = await rpc.get_mint_state(address)
        holder = await rpc.get_token_holder(address)
    assert await request_statuses(admin, tenant) == {"confirmed": 1}
    assert await attempts_of(admin, ticket) == [(1, "failed"), (2, "confirmed")]
    row = await admin.fetchrow("SELECT status, token_mint FROM tickets WHERE id = $1", UUID(ticket))
    assert (row["status"], row["token_mint"]) == ("minted", str(address))
    assert state is not None and state.supply == 1 and state.mint_authority is not None
    assert state.metadata is not None and state.metadata.field("ticket_id") == ticket
    assert holder is not None and holder[1] == 1
    assert "could not apply outcome" not in worker.output()
