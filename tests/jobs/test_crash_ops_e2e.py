"""A worker SIGKILLed between record and send, for each operation a minted ticket has:
verify, metadata_update and a burn that closes the mint.

The localnet holds every sendTransaction (`stall_methods`), so the worker records its
attempts, signs them and is killed while its sends wait: the ledger never sees them. A
new worker must find what was recorded and bring each request to exactly one landed
transaction."""

from __future__ import annotations

import asyncio
from uuid import UUID

import asyncpg
import pytest
from solders.pubkey import Pubkey
from solders.signature import Signature

from chainworker.chain.rpc import SolanaRpc
from chainworker.localnet.process import LocalnetProcess
from tests.helpers import Stack, wait_for
from tests.jobs.test_lifecycle_e2e import request_statuses, settled

SEAT = "K-12"


async def recorded_unsent(admin: asyncpg.Connection, tenant: str) -> dict[str, list[str]]:
    """Signatures of the attempts recorded and still waiting, by operation."""
    rows = await admin.fetch(
        """SELECT tx_type, tx_signature FROM pending_transactions
            WHERE tenant_id = $1 AND status = 'pending' AND tx_type <> 'mint'""",
        UUID(tenant),
    )
    found: dict[str, list[str]] = {}
    for row in rows:
        found.setdefault(row["tx_type"], []).append(row["tx_signature"])
    return found


@pytest.mark.slow
async def test_sigkill_between_record_and_send_for_each_operation(
    stack: Stack, admin: asyncpg.Connection, localnet_faults: LocalnetProcess
) -> None:
    seeded = stack.cli_json("seed", "--tickets", "6", "--users", "2")
    tenant, event = seeded["tenant_id"], seeded["event_id"]
    verified, also_verified, updated, also_updated, refunded, also_refunded = seeded["ticket_ids"]
    # A killed worker's jobs stay locked for the job timeout + 10 s: keep it short here.
    stack.extra.update(JOB_TIMEOUT_SECONDS="5", AUTO_VERIFY="false")
    worker = stack.worker()
    try:
        stack.cli("event", "create-group", "--tenant", tenant, "--event", event)
        stack.cli("enqueue", "mint", "--tenant", tenant, "--ticket", "-",
                  stdin="\n".join(seeded["ticket_ids"]))
        await wait_for(lambda: settled(admin, tenant, 6), 60, "the mints")
        mints = {
            str(row["id"]): Pubkey.from_string(row["token_mint"])
            for row in await admin.fetch(
                "SELECT id, token_mint FROM tickets WHERE tenant_id = $1", UUID(tenant)
            )
        }

        # Every send is held from here on: what the worker records never reaches the ledger.
        localnet_faults.set_faults(stall_rate=1.0, stall_seconds=120.0,
                                   stall_methods=["sendTransaction"])
        for ticket in (verified, also_verified):
            stack.cli("enqueue", "verify", "--tenant", tenant, "--ticket", ticket)
        for ticket in (updated, also_updated):
            stack.cli("enqueue", "metadata", "--tenant", tenant, "--ticket", ticket,
                      "--field", f"seat={SEAT}")
        for ticket in (refunded, also_refunded):
            stack.cli("enqueue", "burn", "--tenant", tenant, "--ticket", ticket,
                      "--reason", "refund")

        async def all_recorded() -> bool:
            found = await recorded_unsent(admin, tenant)
            return all(len(found.get(op, [])) == 2 for op in ("verify", "metadata_update",
                                                               "burn"))

        await wait_for(all_recorded, 60, "six recorded attempts")
        worker.kill()
        unsent = await recorded_unsent(admin, tenant)
        localnet_faults.clear_faults()
        async with SolanaRpc([localnet_faults.rpc_url]) as rpc:
            signatures = [Signature.from_string(s) for batch in unsent.values() for s in batch]
            await asyncio.sleep(1.0)  # a few slots: anything that had been sent would land
            statuses = await rpc.signature_statuses(signatures)
            assert all(status is None for status in statuses), statuses

        worker = stack.worker()
        await wait_for(lambda: settled(admin, tenant, 12), 120, "the six after the kill")
    finally:
        worker.stop()

    assert await request_statuses(admin, tenant) == {"confirmed": 12}
    per_request = await admin.fetch(
        """SELECT r.operation, r.ticket_id,
                  count(p.id) FILTER (WHERE p.status = 'confirmed') AS confirmed,
                  count(p.id) FILTER (WHERE p.status IN ('pending', 'confirming')) AS live
             FROM chain_requests r LEFT JOIN pending_transactions p ON p.request_id = r.id
            WHERE r.tenant_id = $1 GROUP BY r.id""",
        UUID(tenant),
    )
    assert len(per_request) == 12
    assert all(row["confirmed"] == 1 and row["live"] == 0 for row in per_request), [
        dict(row) for row in per_request
    ]

    group = await admin.fetchval(
        "SELECT group_mint FROM chainworker_event_groups WHERE tenant_id = $1", UUID(tenant)
    )
    async with SolanaRpc([localnet_faults.rpc_url]) as rpc:
        numbers = set()
        for ticket in (verified, also_verified):
            state = await rpc.get_mint_state(mints[ticket])
            assert state is not None and state.groups.member is not None
            assert str(state.groups.member.group) == group
            numbers.add(state.groups.member.member_number)
        assert numbers == {1, 2}  # each joined once
        for ticket in (updated, also_updated):
            state = await rpc.get_mint_state(mints[ticket])
            assert state is not None and state.metadata is not None
            assert state.metadata.field("seat") == SEAT
        for ticket in (refunded, also_refunded):
            assert await rpc.get_mint_state(mints[ticket]) is None  # closed
