"""`chainworker authority rotate` end to end on the localnet, with a SIGKILL in the middle.

Tickets of two tenants are minted under the old authority A, the first tenant's event with
a group. The workers restart with the new authority B and A as the previous one: a
transfer and a verify of tickets A still holds are signed by A (read from the chain). One
tenant is rotated alone, its group with it; then every send is held, the
rotation of all tenants is asked (the rotated tenant is not asked again: the chain says
it is done), and the worker is SIGKILLed with every rotation recorded and none sent. A new
worker and a second run of the command (which finds the requests, records none) finish
it. Every ticket and the group then have B in every authority, and a worker with B alone
transfers, updates, burns and verifies.
"""

from __future__ import annotations

import subprocess
import sys
from uuid import UUID

import asyncpg
from solders.keypair import Keypair
from solders.pubkey import Pubkey

from chainworker.chain import group
from chainworker.chain.rpc import SolanaRpc
from chainworker.localnet.process import LocalnetProcess
from tests.helpers import Stack, wait_for
from tests.jobs.test_lifecycle_e2e import accepted_transfer, request_statuses, settled


async def _chain_authorities(rpc: SolanaRpc, mint: Pubkey) -> dict[str, Pubkey | None]:
    account = await rpc.get_account(mint)
    assert account is not None
    state = await rpc.get_mint_state(mint)
    assert state is not None and state.metadata is not None
    extensions = group.parse_group_extensions(account.data)
    assert extensions.member_pointer is not None
    return {
        # None once a member: a verify removes it.
        **({"mint": state.mint_authority} if state.mint_authority is not None else {}),
        "permanent_delegate": state.permanent_delegate,
        "close": state.close_authority,
        "update": state.metadata.update_authority,
        "member_pointer": extensions.member_pointer.authority,
    }


async def _tickets(admin: asyncpg.Connection, tenant: str) -> dict[str, asyncpg.Record]:
    rows = await admin.fetch(
        "SELECT id, status, user_id, token_mint FROM tickets WHERE tenant_id = $1 ORDER BY id",
        UUID(tenant),
    )
    return {str(row["id"]): row for row in rows}


async def _rotations(admin: asyncpg.Connection, key: str) -> dict[str, int]:
    rows = await admin.fetch(
        "SELECT status, count(*) AS n FROM chain_requests WHERE request_key = $1 GROUP BY status",
        key,
    )
    return {row["status"]: row["n"] for row in rows}


async def test_rotation_survives_a_kill_and_leaves_every_ticket_with_the_new_key(
    stack: Stack, admin: asyncpg.Connection, localnet_faults: LocalnetProcess
) -> None:
    old, new = Keypair(), Keypair()
    key = f"authority:{new.pubkey()}"
    stack.extra.update(AUTHORITY_KEYPAIR=str(old), AUTO_VERIFY="false", JOB_TIMEOUT_SECONDS="5")
    first = stack.cli_json("seed", "--tickets", "3", "--users", "2", "--tenant-name", "One")
    second = stack.cli_json("seed", "--tickets", "5", "--users", "2", "--tenant-name", "Two")
    worker = stack.worker()
    try:
        stack.cli("event", "create-group", "--tenant", first["tenant_id"],
                  "--event", first["event_id"])
        for seeded in (first, second):
            stack.cli("enqueue", "mint", "--tenant", seeded["tenant_id"], "--ticket", "-",
                      stdin="\n".join(seeded["ticket_ids"]))
        async def minted() -> bool:
            return (await settled(admin, first["tenant_id"], 3)
                    and await settled(admin, second["tenant_id"], 5))

        await wait_for(minted, 60, "the mints under the old authority")
    finally:
        worker.stop()

    # Fail closed, in one line, before anything is read or recorded.
    stale = _run_failing(stack, "authority", "rotate", "--to", str(new.pubkey()))
    assert "is not AUTHORITY_*'s key" in stale
    stack.extra.update(AUTHORITY_KEYPAIR=str(new))
    alone = _run_failing(stack, "authority", "rotate", "--to", str(new.pubkey()))
    assert "PREVIOUS_AUTHORITY_KEYPAIR (or _PKCS11_KEY_LABEL) is not set" in alone
    stack.extra.update(PREVIOUS_AUTHORITY_KEYPAIR=str(new))
    same = _run_failing(stack, "authority", "rotate", "--to", str(new.pubkey()))
    assert "is the authority itself" in same and str(new) not in same
    stack.extra.update(PREVIOUS_AUTHORITY_KEYPAIR=str(old))
    mismatch = _run_failing(stack, "authority", "rotate", "--to", str(old.pubkey()))
    assert "is not AUTHORITY_*'s key" in mismatch and str(old) not in mismatch
    garbage = _run_failing(stack, "authority", "rotate", "--to", "not-a-key")
    assert "is not a base58 public key" in garbage

    planned = stack.cli_json("authority", "rotate", "--to", str(new.pubkey()), "--dry-run")
    assert planned["chain"] == {"rotated": 0, "to_rotate": 8, "closed": 0, "foreign": 0}
    assert (planned["recorded"], planned["tickets"]) == (8, 8)
    assert await _rotations(admin, key) == {}  # a dry run records nothing

    worker = stack.worker()
    try:
        # During the rotation, a ticket the chain shows with A is moved with A's signature.
        one = await _tickets(admin, first["tenant_id"])
        moved_id = first["ticket_ids"][0]
        to_user = next(u for u in first["user_ids"] if UUID(u) != one[moved_id]["user_id"])
        transfer_id = await accepted_transfer(
            admin, first["tenant_id"], UUID(moved_id), one[moved_id]["user_id"], UUID(to_user)
        )
        stack.cli("enqueue", "transfer", "--tenant", first["tenant_id"],
                  "--transfer", str(transfer_id))
        # And a ticket whose mint and group A holds joins the group with A's signatures.
        stack.cli("enqueue", "verify", "--tenant", first["tenant_id"],
                  "--ticket", first["ticket_ids"][1])
        await wait_for(lambda: settled(admin, first["tenant_id"], 5), 60, "transfer, verify")
        assert await request_statuses(admin, first["tenant_id"]) == {"confirmed": 5}

        done_first = stack.cli_json("authority", "rotate", "--to", str(new.pubkey()),
                                    "--tenant", first["tenant_id"])
        assert done_first["done"] and done_first["chain"]["rotated"] == 3, done_first
        assert done_first["requests"] == {"confirmed": 3}
        assert done_first["groups"] == {"rotated": 1, "to_rotate": 0, "closed": 0, "foreign": 0}

        # Every send is held: the worker records and signs the rotations, the ledger sees none.
        localnet_faults.set_faults(stall_rate=1.0, stall_seconds=120.0,
                                   stall_methods=["sendTransaction"])
        asked = stack.cli_json("authority", "rotate", "--to", str(new.pubkey()), "--no-wait")
        assert asked["chain"] == {"rotated": 3, "to_rotate": 5, "closed": 0, "foreign": 0}
        assert asked["groups"]["rotated"] == 1  # read, and left alone: nothing is sent
        assert (asked["recorded"], asked["found"]) == (5, 0), asked

        async def all_signed() -> bool:
            count = await admin.fetchval(
                """SELECT count(*) FROM pending_transactions p
                     JOIN chain_requests r ON r.id = p.request_id
                    WHERE r.request_key = $1 AND r.tenant_id = $2""",
                key, UUID(second["tenant_id"]),
            )
            return bool(count == 5)

        await wait_for(all_signed, 60, "five rotations recorded and signed")
        worker.kill()
    finally:
        worker.stop()
    localnet_faults.clear_faults()

    # Asked again before any worker runs, the chain still shows the five with the old key:
    # each is found with its request, none is recorded twice. (With a worker running, its
    # rebroadcast can land them before the scan reads the chain, and the count is a race.)
    again = stack.cli_json("authority", "rotate", "--to", str(new.pubkey()), "--no-wait")
    assert (again["recorded"], again["found"]) == (0, 5), again
    assert again["chain"] == {"rotated": 3, "to_rotate": 5, "closed": 0, "foreign": 0}
    worker = stack.worker()
    try:
        finished = stack.cli_json("authority", "rotate", "--to", str(new.pubkey()))
        assert finished["done"] and finished["recorded"] == 0, finished
        assert finished["chain"] == {"rotated": 8, "to_rotate": 0, "closed": 0,
                                     "foreign": 0}, worker.output()[-3000:]
        # Not "requests": it counts only the tenants this scan still found to rotate, a race
        # too. Every request's status is read from the table below.
        twice = stack.cli_json("authority", "rotate", "--to", str(new.pubkey()))
        assert (twice["recorded"], twice["found"], twice["done"]) == (0, 0, True)
    finally:
        worker.stop()
    assert await _rotations(admin, key) == {"confirmed": 8}
    async with SolanaRpc([localnet_faults.rpc_url]) as rpc:
        group_mint = await admin.fetchval(
            "SELECT group_mint FROM chainworker_event_groups WHERE tenant_id = $1",
            UUID(first["tenant_id"]),
        )
        group_state = await rpc.get_mint_state(Pubkey.from_string(group_mint))
        assert group_state is not None and group_state.groups.group is not None
        assert group_state.groups.group.update_authority == new.pubkey()
        assert group_state.mint_authority == new.pubkey()
    # Each rotation landed once: one confirmed attempt per request, nothing else live.
    attempts = await admin.fetch(
        """SELECT r.id, count(*) FILTER (WHERE p.status = 'confirmed') AS confirmed,
                  count(*) FILTER (WHERE p.status IN ('pending', 'confirming')) AS live
             FROM chain_requests r JOIN pending_transactions p ON p.request_id = r.id
            WHERE r.request_key = $1 GROUP BY r.id""",
        key,
    )
    assert [(row["confirmed"], row["live"]) for row in attempts] == [(1, 0)] * 8

    async with SolanaRpc([localnet_faults.rpc_url]) as rpc:
        for seeded in (first, second):
            for row in (await _tickets(admin, seeded["tenant_id"])).values():
                mint = Pubkey.from_string(row["token_mint"])
                found = await _chain_authorities(rpc, mint)
                assert set(found.values()) == {new.pubkey()}, (row["id"], found)

    # The old key is gone from the settings: the new one alone moves, updates and burns.
    stack.extra.pop("PREVIOUS_AUTHORITY_KEYPAIR")
    two = await _tickets(admin, second["tenant_id"])
    moved, updated, burned = second["ticket_ids"][:3]
    to_user = next(u for u in second["user_ids"] if UUID(u) != two[moved]["user_id"])
    transfer_id = await accepted_transfer(
        admin, second["tenant_id"], UUID(moved), two[moved]["user_id"], UUID(to_user)
    )
    worker = stack.worker()
    try:
        tenant = second["tenant_id"]
        stack.cli("enqueue", "transfer", "--tenant", tenant, "--transfer", str(transfer_id))
        stack.cli("enqueue", "metadata", "--tenant", tenant, "--ticket", updated,
                  "--field", "seat=R-7")
        stack.cli("enqueue", "burn", "--tenant", tenant, "--ticket", burned, "--reason", "refund")
        # The rotated group adds a rotated ticket with the new key's signatures alone.
        stack.cli("enqueue", "verify", "--tenant", first["tenant_id"],
                  "--ticket", first["ticket_ids"][2])
        await wait_for(lambda: settled(admin, tenant, 13), 60, "the new key's operations")
        await wait_for(lambda: settled(admin, first["tenant_id"], 9), 60, "the new key's verify")
    finally:
        worker.stop()
    statuses = await request_statuses(admin, second["tenant_id"])
    assert statuses == {"confirmed": 13}, worker.output()[-3000:]
    assert await request_statuses(admin, first["tenant_id"]) == {"confirmed": 9}
    assert str(old) not in worker.output() and str(new) not in worker.output()
    async with SolanaRpc([localnet_faults.rpc_url]) as rpc:
        state = await rpc.get_mint_state(Pubkey.from_string(two[updated]["token_mint"]))
        assert state is not None and state.metadata is not None
        assert state.metadata.field("seat") == "R-7"
        assert await rpc.get_mint_state(Pubkey.from_string(two[burned]["token_mint"])) is None


def _run_failing(stack: Stack, *args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "chainworker", *args], env=stack.env(),
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, (done.returncode, done.stdout, done.stderr)
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    return done.stderr
