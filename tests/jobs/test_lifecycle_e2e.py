"""Mint, transfer and burn end to end: real worker processes, Postgres, Redis and the localnet."""

from __future__ import annotations

import json
from uuid import UUID

import asyncpg
from solders.keypair import Keypair
from solders.pubkey import Pubkey

from chainworker.chain.keys import (
    custodial_wallet,
    load_authority,
    load_custodial_seed,
    load_mint_seed,
)
from chainworker.chain.nft import holder_token_account
from chainworker.chain.rpc import SolanaRpc
from chainworker.config import load_settings
from chainworker.localnet.process import LocalnetProcess
from tests.helpers import Stack, wait_for


async def request_statuses(admin: asyncpg.Connection, tenant: str) -> dict[str, int]:
    rows = await admin.fetch(
        "SELECT status, count(*) FROM chain_requests WHERE tenant_id = $1 GROUP BY status",
        UUID(tenant),
    )
    return {row["status"]: row["count"] for row in rows}


async def settled(admin: asyncpg.Connection, tenant: str, total: int) -> bool:
    statuses = await request_statuses(admin, tenant)
    live = statuses.get("queued", 0) + statuses.get("submitted", 0)
    return sum(statuses.values()) >= total and live == 0


async def accepted_transfer(
    admin: asyncpg.Connection, tenant: str, ticket: UUID, from_user: UUID, to_user: UUID
) -> int:
    """A transfer the ticket service accepted, as its own row: the id to enqueue."""
    transfer_id: int = await admin.fetchval(
        """INSERT INTO ticket_transfers (tenant_id, ticket_id, from_user_id, to_user_id,
                                         status, accepted_at)
           VALUES ($1, $2, $3, $4, 'accepted', now()) RETURNING id""",
        UUID(tenant), ticket, from_user, to_user,
    )
    return transfer_id


def custodial(stack: Stack, tenant: str, user: str) -> Pubkey:
    seed = load_custodial_seed(load_settings(state_dir=stack.state_dir))
    return custodial_wallet(seed, UUID(tenant), UUID(user))


async def test_mint_transfer_burn_with_chain_state(
    stack: Stack, admin: asyncpg.Connection, localnet_faults: LocalnetProcess
) -> None:
    seeded = stack.cli_json("seed", "--tickets", "3", "--users", "2")
    tenant, tickets, users = seeded["tenant_id"], seeded["ticket_ids"], seeded["user_ids"]
    worker = stack.worker(LOG_LEVEL="DEBUG")  # the most the logs ever say
    try:
        stack.cli("enqueue", "mint", "--tenant", tenant, "--ticket", "-", stdin="\n".join(tickets))
        await wait_for(lambda: settled(admin, tenant, 3), 60, "three mints")
        assert await request_statuses(admin, tenant) == {"confirmed": 3}

        rows = await admin.fetch(
            "SELECT id, status, token_mint, user_id FROM tickets WHERE tenant_id = $1",
            UUID(tenant),
        )
        assert {row["status"] for row in rows} == {"minted"}
        async with SolanaRpc([localnet_faults.rpc_url]) as rpc:
            for row in rows:
                mint = Pubkey.from_string(row["token_mint"])
                state = await rpc.get_mint_state(mint)
                assert state is not None
                # the event has no group: the mint authority waits for the ticket's verify
                authority = load_authority(load_settings(state_dir=stack.state_dir)).pubkey()
                assert (state.supply, state.decimals, state.mint_authority) == (1, 0, authority)
                assert state.metadata is not None
                assert state.metadata.field("ticket_id") == str(row["id"])
                assert state.metadata.field("event_id") == seeded["event_id"]
                holder = await rpc.get_token_holder(mint)
                assert holder == (custodial(stack, tenant, str(row["user_id"])), 1)

        # Transfer the first ticket to the other user, burn the second for a refund.
        first, second = rows[0], rows[1]
        to_user = next(u for u in users if UUID(u) != first["user_id"])
        transfer_id = await accepted_transfer(
            admin, tenant, first["id"], first["user_id"], UUID(to_user)
        )
        stack.cli("enqueue", "transfer", "--tenant", tenant, "--transfer", str(transfer_id))
        stack.cli("enqueue", "burn", "--tenant", tenant, "--ticket", str(second["id"]),
                  "--reason", "refund")
        await wait_for(lambda: settled(admin, tenant, 5), 60, "transfer and burn")
        assert await request_statuses(admin, tenant) == {"confirmed": 5}

        moved = await admin.fetchrow("SELECT status, user_id FROM tickets WHERE id = $1",
                                     first["id"])
        assert (moved["status"], moved["user_id"]) == ("transferred", UUID(to_user))
        transfer = await admin.fetchrow(
            "SELECT status, blockchain_confirmed, tx_signature FROM ticket_transfers WHERE id = $1",
            transfer_id,
        )
        assert transfer["status"] == "completed" and transfer["blockchain_confirmed"]
        assert transfer["tx_signature"]
        burned = await admin.fetchval("SELECT status FROM tickets WHERE id = $1", second["id"])
        assert burned == "refunded"
        async with SolanaRpc([localnet_faults.rpc_url]) as rpc:
            holder = await rpc.get_token_holder(Pubkey.from_string(first["token_mint"]))
            assert holder == (custodial(stack, tenant, to_user), 1)
            # The refund closed the mint and the custodial holder's token account.
            gone = Pubkey.from_string(second["token_mint"])
            assert await rpc.get_account(gone) is None
            wallet = custodial(stack, tenant, str(second["user_id"]))
            assert await rpc.get_account(holder_token_account(wallet, gone)) is None

        history = await admin.fetch(
            """SELECT previous_status, new_status, actor_type, source FROM ticket_state_history
                WHERE ticket_id = $1 ORDER BY created_at""",
            first["id"],
        )
        assert [(h["previous_status"], h["new_status"]) for h in history] == [
            ("sold", "minted"), ("minted", "transferred"),
        ]
        assert {h["actor_type"] for h in history} == {"service"}
        events = await admin.fetch(
            "SELECT event_type, payload FROM outbox WHERE tenant_id = $1 ORDER BY id", UUID(tenant)
        )
        kinds = [e["event_type"] for e in events]
        assert kinds.count("ticket.minted") == 3
        assert kinds.count("ticket.transferred") == 1 and kinds.count("ticket.burned") == 1
        burned_event = next(e for e in events if e["event_type"] == "ticket.burned")
        assert json.loads(burned_event["payload"])["reason"] == "refund"
        synced = await admin.fetchval(
            """SELECT count(*) FROM blockchain_sync_log
                WHERE tenant_id = $1 AND status = 'confirmed'""",
            UUID(tenant),
        )
        assert synced == 5
        spent = await admin.fetchval(
            "SELECT sum(amount) FROM spending_transactions WHERE tenant_id = $1", UUID(tenant)
        )
        assert spent > 3 * 5_000
        credit = await admin.fetchval(
            "SELECT amount FROM spending_transactions WHERE tenant_id = $1"
            " AND reference_type = 'rent_reclaimed'",
            UUID(tenant),
        )
        assert credit < -2_074_080  # the mint's rent and the token account's
    finally:
        worker.stop()
    assert_no_key_material(stack, worker.output())


def assert_no_key_material(stack: Stack, log: str) -> None:
    """The whole run's log holds none of the keys it worked with, in any usual encoding."""
    settings = load_settings(state_dir=stack.state_dir)
    authority = load_authority(settings)
    assert isinstance(authority, Keypair)  # a development keypair, written to the state dir
    secrets = {
        str(authority),  # base58 of the 64-byte keypair
        json.dumps(list(bytes(authority))),
        ",".join(str(b) for b in bytes(authority)),
        bytes(authority).hex(),
        load_mint_seed(settings).decode(),
        load_custodial_seed(settings).decode(),
    }
    assert "worker started" in log  # the log of the whole run, not an empty file
    for secret in secrets:
        assert secret not in log


async def test_duplicate_requests_collapse_and_minted_ticket_is_refused(
    stack: Stack, admin: asyncpg.Connection
) -> None:
    seeded = stack.cli_json("seed", "--tickets", "2")
    tenant, tickets = seeded["tenant_id"], seeded["ticket_ids"]
    first = stack.cli_json("enqueue", "mint", "--tenant", tenant, "--ticket", tickets[0],
                           "--ticket", tickets[0], "--ticket", tickets[1])
    again = stack.cli_json("enqueue", "mint", "--tenant", tenant, "--ticket", tickets[0])
    assert [r["created"] for r in first] == [True, True, True][: len(first)]
    assert again[0]["request_id"] == first[0]["request_id"] and not again[0]["created"]
    worker = stack.worker()
    try:
        await wait_for(lambda: settled(admin, tenant, 2), 60, "two mints")
        # A third request for a minted ticket is refused with its reason; nothing changes.
        before = await admin.fetchval("SELECT token_mint FROM tickets WHERE id = $1",
                                      UUID(tickets[0]))
        stack.cli("enqueue", "mint", "--tenant", tenant, "--ticket", tickets[0])
        await wait_for(lambda: settled(admin, tenant, 3), 30, "the refusal")
        refused = await admin.fetchrow(
            "SELECT outcome_code, outcome_message FROM chain_requests WHERE status = 'refused'"
        )
        assert refused["outcome_code"] == "already_minted"
        after = await admin.fetchval("SELECT token_mint FROM tickets WHERE id = $1",
                                     UUID(tickets[0]))
        assert after == before
        assert await admin.fetchval(
            "SELECT count(*) FROM pending_transactions WHERE ticket_id = $1", UUID(tickets[0])
        ) == 1
    finally:
        worker.stop()
