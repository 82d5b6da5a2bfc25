"""Event collections end to end: the API, the CLI, a real worker process, PostgreSQL,
Redis and the localnet. An event's group is created once; tickets minted afterwards join
it on their own, tickets minted before are verified in bulk; every refusal says why, a
ticket asked for twice is one member, the chain view shows membership, and reconcile finds
a ticket the database calls verified that is not a member on chain."""

from __future__ import annotations

import json
from pathlib import Path
from uuid import UUID

import asyncpg
from arq.connections import ArqRedis
from solders.pubkey import Pubkey

from chainworker.chain import nft
from chainworker.chain.keys import (
    custodial_wallet,
    load_authority,
    load_custodial_seed,
    load_mint_seed,
    mint_keypair,
)
from chainworker.chain.rpc import SolanaRpc
from chainworker.client import ChainworkerClient
from chainworker.config import load_settings
from chainworker.db import seed
from chainworker.jobs.enqueue import enqueue_jobs
from chainworker.lifecycle.model import BurnReason, TxOp
from chainworker.localnet.process import LocalnetProcess
from tests.api.conftest import RunningApi, new_tenant
from tests.helpers import Stack, wait_for
from tests.jobs.test_lifecycle_e2e import settled


async def verifies(admin: asyncpg.Connection, tenant: UUID) -> dict[UUID, list[tuple[str, str]]]:
    """Each ticket's verify requests, oldest first: (status, outcome code or source)."""
    rows = await admin.fetch(
        """SELECT ticket_id, status, coalesce(outcome_code, source) AS why FROM chain_requests
            WHERE tenant_id = $1 AND operation = 'verify' ORDER BY seq""",
        tenant,
    )
    found: dict[UUID, list[tuple[str, str]]] = {}
    for row in rows:
        found.setdefault(row["ticket_id"], []).append((row["status"], row["why"]))
    return found


async def mint_the_old_way(
    stack: Stack, admin: asyncpg.Connection, rpc: SolanaRpc, tenant: UUID, ticket: UUID,
    event: UUID,
) -> Pubkey:
    """The ticket minted as chainworker did before event collections (no GroupMemberPointer,
    the mint authority removed), and recorded so."""
    settings = load_settings(state_dir=stack.state_dir)
    user = await admin.fetchval("SELECT user_id FROM tickets WHERE id = $1", ticket)
    holder = custodial_wallet(load_custodial_seed(settings), tenant, user)
    mint = mint_keypair(load_mint_seed(settings), tenant, ticket)
    blockhash, _ = await rpc.latest_blockhash()
    signed = nft.build_mint(
        authority=load_authority(settings), mint=mint, holder=holder, name="Legacy #1",
        symbol="TICKET", uri="", ticket_id=ticket, event_id=event, memo="cw:legacy:1",
        recent_blockhash=blockhash, group_member=False,
    )
    await rpc.wait_for_confirmation(await rpc.send_raw(signed.raw), 20)
    await admin.execute(
        """UPDATE tickets SET status = 'minted', token_mint = $2, wallet_address = $3,
                              is_nft = true, minted_at = now() WHERE id = $1""",
        ticket, str(mint.pubkey()), str(holder),
    )
    return mint.pubkey()


async def test_an_event_collection_from_its_group_to_its_members(
    running_api: RunningApi,
    pool: asyncpg.Pool,
    admin: asyncpg.Connection,
    arq: ArqRedis,
    redis_url: str,
    localnet: LocalnetProcess,
    tmp_path: Path,
) -> None:
    tenant = await new_tenant(pool, admin, tickets=6, users=2)
    other = await seed.seed_tenant(admin, tickets=1, tenant_name="other")
    tenant_id, event = tenant.id, tenant.seeded.event_id
    early, new_a, new_b, unminted, legacy, refunded = tenant.seeded.ticket_ids
    stack = Stack(
        db=running_api.db, redis_url=redis_url, rpc_urls=localnet.rpc_url,
        state_dir=tmp_path / "state", queue=running_api.settings.queue_name,
    )
    t, e = str(tenant_id), str(event)
    worker = stack.worker()
    async with ChainworkerClient(running_api.url, tenant.token) as client, \
            SolanaRpc([localnet.rpc_url]) as rpc:
        try:
            # Before the event has a group. A verify that comes after a burn of the same
            # ticket waits for it (acceptance order); one ticket asked for twice is one.
            for ticket in (early, refunded):
                await client.mint(ticket)
            await wait_for(lambda: settled(admin, t, 2), 60, "two mints")
            assert (await client.ticket_chain(early))["membership"] == {
                "group": None, "member_group": None, "member_number": None,
                "verified": False, "error": None,
            }
            await client.burn(refunded, reason=BurnReason.REFUND)
            stack.cli("enqueue", "verify", "--tenant", t, "--ticket", str(early),
                      "--ticket", str(unminted), "--ticket", str(refunded),
                      "--ticket", str(unminted))
            await wait_for(lambda: settled(admin, t, 6), 60, "a burn and three verifies")
            found = await verifies(admin, tenant_id)
            assert found[early] == [("refused", "group_missing")]
            assert found[unminted] == [("refused", "not_minted")]
            assert found[refunded] == [("refused", "burned")]

            # The group, once: asked again, the same one.
            created = stack.cli_json("event", "create-group", "--tenant", t, "--event", e)
            assert created["status"] == "confirmed" and created["created"] is True, created
            again = stack.cli_json("event", "create-group", "--tenant", t, "--event", e)
            assert again == {**created, "created": False}
            assert await admin.fetchval(
                "SELECT count(*) FROM chainworker_event_groups WHERE tenant_id = $1", tenant_id
            ) == 1
            group_mint = Pubkey.from_string(created["group_mint"])
            authority = load_authority(load_settings(state_dir=stack.state_dir)).pubkey()
            state = await rpc.get_mint_state(group_mint)
            assert state is not None and state.groups.group is not None
            assert state.groups.group.update_authority == authority
            assert state.groups.group_pointer is not None
            assert state.groups.group_pointer.group_address == group_mint
            assert state.mint_authority == authority and state.supply == 0

            # Minted now, they join on their own.
            for ticket in (new_a, new_b):
                await client.mint(ticket)
            await wait_for(lambda: settled(admin, t, 10), 60, "two mints and their verifies")
            found = await verifies(admin, tenant_id)
            assert found[new_a] == found[new_b] == [("confirmed", "worker")]
            chain = await client.ticket_chain(new_a)
            assert chain["membership"]["group"] == chain["membership"]["member_group"] == str(
                group_mint
            )
            assert chain["membership"]["verified"] is True
            assert chain["membership"]["member_number"] in (1, 2)

            # In bulk, twice in a row: what is minted and not a member (the early ticket,
            # one minted the old way); another tenant's ticket is refused by the CLI.
            legacy_mint = await mint_the_old_way(stack, admin, rpc, tenant_id, legacy, event)
            first = stack.cli_json("event", "verify", "--tenant", t, "--event", e)
            assert (first["requested"], first["created"]) == (2, 2), first
            second = stack.cli_json("event", "verify", "--tenant", t, "--event", e)
            assert second["created"] == 0, second
            foreign = stack.cli("enqueue", "verify", "--tenant", t,
                                "--ticket", str(other.ticket_ids[0]), check=False)
            assert foreign == ""
            await wait_for(lambda: settled(admin, t, 12), 60, "the bulk verifies")
            found = await verifies(admin, tenant_id)
            assert found[early] == [("refused", "group_missing"), ("confirmed", "cli")]
            # refused from the mint's extensions, read before anything was signed
            assert found[legacy] == [("refused", "not_a_member_mint")]
            assert await admin.fetchval(
                "SELECT count(*) FROM pending_transactions WHERE ticket_id = $1", legacy
            ) == 0
            assert (await client.ticket_chain(legacy))["membership"]["verified"] is False
            # Run again: nothing is left to ask for (the legacy mint never will be).
            third = stack.cli_json("event", "verify", "--tenant", t, "--event", e)
            assert third["requested"] == 0, third

            # On chain: three members numbered apart, none able to mint any more.
            numbers = set()
            for ticket in (early, new_a, new_b):
                mint = await admin.fetchval("SELECT token_mint FROM tickets WHERE id = $1",
                                            ticket)
                state = await rpc.get_mint_state(Pubkey.from_string(mint))
                assert state is not None and state.mint_authority is None and state.supply == 1
                member = state.groups.member
                assert member is not None and member.group == group_mint
                numbers.add(member.member_number)
            assert numbers == {1, 2, 3}
            old = await rpc.get_mint_state(legacy_mint)
            assert old is not None and old.groups.member is None
            assert old.groups.member_pointer is None
            landed = await admin.fetch(
                """SELECT ticket_id, count(*) AS n FROM pending_transactions
                    WHERE tx_type = 'verify' AND status = 'confirmed' AND tenant_id = $1
                    GROUP BY ticket_id""",
                tenant_id,
            )
            assert {row["ticket_id"]: row["n"] for row in landed} == {
                early: 1, new_a: 1, new_b: 1,
            }

            # Another tenant's ticket named in this tenant's request: the worker refuses it.
            forged = await admin.fetchval(
                """INSERT INTO chain_requests (tenant_id, ticket_id, operation, source)
                   VALUES ($1, $2, 'verify', 'cli') RETURNING id""",
                tenant_id, other.ticket_ids[0],
            )
            await enqueue_jobs(arq, stack.queue, [(forged, tenant_id, TxOp.VERIFY)])
            await wait_for(lambda: settled(admin, t, 13), 60, "a foreign ticket's verify")
            assert await admin.fetchval(
                "SELECT outcome_code FROM chain_requests WHERE id = $1", forged
            ) == "unknown_ticket"
        finally:
            worker.stop()
    events = await admin.fetch(
        "SELECT payload FROM outbox WHERE tenant_id = $1 AND event_type = 'ticket.verified'",
        tenant_id,
    )
    assert {UUID(json.loads(row["payload"])["ticket_id"]) for row in events} == {
        early, new_a, new_b,
    }

    # The database says the legacy ticket is verified: reconcile finds it is not a member.
    await admin.execute(
        """INSERT INTO chain_requests (tenant_id, ticket_id, operation, source, status,
                                       completed_at)
           VALUES ($1, $2, 'verify', 'cli', 'confirmed', now())""",
        tenant_id, legacy,
    )
    report = json.loads(stack.cli("reconcile", "holders", "--tenant", t, "--json",
                                  check=False))
    assert [(d["ticket_id"], d["kind"]) for d in report["drifts"]] == [
        (str(legacy), "not_a_member")
    ], report
