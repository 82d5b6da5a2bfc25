"""The reconcile CLI against real chain state: a worker records transactions that never land,
then the localnet is steered (rebroadcast, a conflicting burn, warps past the blockhash) so
each verdict is reached for real; `--apply` settles them; holders drift; `tx` commands.

The tests of this module share one world and run in file order: each step builds on the
state the previous one left (the way an operator works through an incident).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import pytest
from redis.asyncio import Redis
from solders.keypair import Keypair
from solders.pubkey import Pubkey

from chainworker.chain import nft
from chainworker.chain.keys import load_authority
from chainworker.chain.rpc import SolanaRpc
from chainworker.config import load_settings
from chainworker.jobs import arq_internals
from chainworker.localnet.process import LocalnetProcess
from tests.conftest import TestDatabase
from tests.helpers import Stack, wait_for

pytestmark = pytest.mark.timeout(120)


@dataclass
class World:
    stack: Stack
    admin: asyncpg.Connection
    localnet: LocalnetProcess
    tenant_a: str
    tenant_b: str
    a: list[str]  # tenant A's tickets: a[0], a[1] minted; a[1] has a live burn; a[2:] live mints
    b: list[str]  # tenant B's tickets: b[0] has a live mint
    users_a: list[str]


def run(stack: Stack, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "chainworker", *args],
        env=stack.env(**env), capture_output=True, text=True, timeout=60,
    )


def run_json(stack: Stack, *args: str, expect: int = 1, **env: str) -> Any:
    result = run(stack, *args, "--json", **env)
    assert result.returncode == expect, result.stderr
    return json.loads(result.stdout)


async def live_count(admin: asyncpg.Connection, tickets: list[str], op: str) -> int:
    return int(await admin.fetchval(
        """SELECT count(*) FROM pending_transactions
            WHERE ticket_id = ANY($1::uuid[]) AND tx_type = $2
              AND status IN ('pending', 'confirming')""",
        [UUID(t) for t in tickets], op,
    ))


async def confirmed_mints(admin: asyncpg.Connection, tickets: list[str]) -> bool:
    count = await admin.fetchval(
        "SELECT count(*) FROM chain_requests WHERE ticket_id = ANY($1::uuid[]) "
        "AND status = 'confirmed'",
        [UUID(t) for t in tickets],
    )
    return int(count) == len(tickets)


async def state_of(admin: asyncpg.Connection) -> dict[str, Any]:
    """Everything reconcile could change, to compare before and after a read-only run."""
    return {
        "tx": sorted(tuple(r) for r in await admin.fetch(
            """SELECT id, status, expiry_check_pending, attempt, updated_at, send_count,
                      lease_owner FROM pending_transactions""")),
        "requests": sorted(tuple(r) for r in await admin.fetch(
            "SELECT id, status, attempts, updated_at FROM chain_requests")),
        "tickets": sorted(tuple(r) for r in await admin.fetch(
            "SELECT id, status, user_id, wallet_address, token_mint FROM tickets")),
        "sync": await admin.fetchval("SELECT count(*) FROM blockchain_sync_log"),
        "outbox": await admin.fetchval("SELECT count(*) FROM outbox"),
        "history": await admin.fetchval("SELECT count(*) FROM ticket_state_history"),
    }


async def attempt_of(admin: asyncpg.Connection, ticket: str, op: str) -> asyncpg.Record:
    row = await admin.fetchrow(
        """SELECT id, request_id, tx_signature, serialized_tx, status, attempt
             FROM pending_transactions WHERE ticket_id = $1 AND tx_type = $2
            ORDER BY attempt DESC LIMIT 1""",
        UUID(ticket), op,
    )
    assert row is not None
    return row


def verdicts(report: dict[str, Any]) -> dict[tuple[str, str], str]:
    return {(f["ticket_id"], f["op"]): f["verdict"] for f in report["findings"]}


@pytest.fixture(scope="module")
async def world(
    module_db: TestDatabase, redis_url: str, localnet: LocalnetProcess,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[World]:
    localnet.clear_faults()
    stack = Stack(db=module_db, redis_url=redis_url, rpc_urls=localnet.rpc_url,
                  state_dir=tmp_path_factory.mktemp("reconcile") / "state")
    admin = await asyncpg.connect(module_db.admin_dsn)
    seeded_a = stack.cli_json("seed", "--tickets", "6", "--users", "3", "--tenant-name", "A")
    seeded_b = stack.cli_json("seed", "--tickets", "2", "--tenant-name", "B")
    w = World(stack, admin, localnet, seeded_a["tenant_id"], seeded_b["tenant_id"],
              seeded_a["ticket_ids"], seeded_b["ticket_ids"], seeded_a["user_ids"])
    worker = stack.worker()
    try:
        stack.cli("enqueue", "mint", "--tenant", w.tenant_a, "--ticket", w.a[0],
                  "--ticket", w.a[1])
        await wait_for(lambda: confirmed_mints(admin, w.a[:2]), 60, "two mints")
        # From here nothing lands and no block is made: the rows stay live and valid.
        localnet.set_faults(drop_rate=1.0, clock_frozen=True)
        stack.cli("enqueue", "mint", "--tenant", w.tenant_a, "--ticket", "-",
                  stdin="\n".join(w.a[2:]))
        stack.cli("enqueue", "mint", "--tenant", w.tenant_b, "--ticket", w.b[0])
        stack.cli("enqueue", "burn", "--tenant", w.tenant_a, "--ticket", w.a[1],
                  "--reason", "revoke")

        async def recorded() -> bool:
            return (await live_count(admin, w.a[2:] + w.b[:1], "mint") == 5
                    and await live_count(admin, w.a[1:2], "burn") == 1)

        await wait_for(recorded, 30, "six live attempts")
    finally:
        worker.stop()
    # The worker is gone; let its leases have run out, as they would within LEASE_SECONDS,
    # so that reconcile --apply may take them.
    await admin.execute("UPDATE pending_transactions SET lease_until = now() - interval '1s'")
    try:
        yield w
    finally:
        localnet.clear_faults()
        await admin.close()


async def test_dry_run_classifies_and_changes_nothing(world: World) -> None:
    before = await state_of(world.admin)
    report = run_json(world.stack, "reconcile", "--older-than", "0s")
    assert report["summary"]["scanned"] == 6
    assert report["summary"]["mode"] == "dry-run"
    assert set(verdicts(report).values()) == {"wait"}
    assert {f["chain"] for f in report["findings"]} == {None}
    finding = report["findings"][0]
    assert set(finding) >= {"tx_id", "tenant_id", "ticket_id", "request_id", "op", "signature",
                            "status", "attempt", "age_seconds", "verdict", "action", "applied"}
    # Nothing is older than an hour: clean, exit 0.
    assert run_json(world.stack, "reconcile", "--older-than", "1h", expect=0)["findings"] == []
    table = run(world.stack, "reconcile", "--older-than", "0s")
    assert table.returncode == 1 and "dry run: nothing changed" in table.stdout
    assert await state_of(world.admin) == before


async def test_filters_select_tenant_and_operation(world: World) -> None:
    only_b = run_json(world.stack, "reconcile", "--older-than", "0s", "--tenant", world.tenant_b)
    assert {f["tenant_id"] for f in only_b["findings"]} == {world.tenant_b}
    assert len(only_b["findings"]) == 1
    burns = run_json(world.stack, "reconcile", "--older-than", "0s", "--op", "burn")
    assert [(f["ticket_id"], f["op"]) for f in burns["findings"]] == [(world.a[1], "burn")]
    limited = run_json(world.stack, "reconcile", "--older-than", "0s", "--limit", "2")
    assert len(limited["findings"]) == 2


async def test_landed_failed_and_expired_are_told_apart(world: World) -> None:
    admin, localnet = world.admin, world.localnet
    settings = load_settings(state_dir=world.stack.state_dir)
    landed = await attempt_of(admin, world.a[2], "mint")
    burn = await attempt_of(admin, world.a[1], "burn")
    ticket = await admin.fetchrow(
        "SELECT token_mint, wallet_address FROM tickets WHERE id = $1", UUID(world.a[1])
    )
    localnet.set_faults(drop_rate=0.0)
    async with SolanaRpc([localnet.rpc_url]) as rpc:
        # The recorded mint of a[2] lands late; someone else burns a[1]'s token first,
        # so the recorded burn then lands with an error.
        await rpc.send_raw(landed["serialized_tx"])
        blockhash, _ = await rpc.latest_blockhash()
        other_burn = nft.build_burn(
            authority=load_authority(settings), mint=Pubkey.from_string(ticket["token_mint"]),
            holder=Pubkey.from_string(ticket["wallet_address"]), memo="elsewhere",
            recent_blockhash=blockhash,
        )
        await rpc.send_raw(other_burn.raw)
        localnet.set_faults(warp_slots=2)
        await rpc.wait_for_confirmation(other_burn.signature, 10)
        await rpc.send_raw(burn["serialized_tx"])
        localnet.set_faults(warp_slots=3)
    before = await state_of(admin)
    report = run_json(world.stack, "reconcile", "--older-than", "0s")
    found = verdicts(report)
    assert found[(world.a[2], "mint")] == "confirm"
    assert found[(world.a[1], "burn")] == "fail"
    failed = next(f for f in report["findings"] if f["op"] == "burn")
    assert failed["chain"]["err"]["code"]
    assert found[(world.a[3], "mint")] == "wait"

    # Past the blockhash's last valid height, the unknown ones certainly expired.
    localnet.set_faults(warp_slots=200)
    found = verdicts(run_json(world.stack, "reconcile", "--older-than", "0s"))
    assert [found[(t, "mint")] for t in world.a[3:] + world.b[:1]] == ["retry"] * 4
    assert found[(world.a[2], "mint")] == "confirm"
    no_retries = verdicts(run_json(world.stack, "reconcile", "--older-than", "0s",
                                   MAX_RETRIES="0"))
    assert [no_retries[(t, "mint")] for t in world.a[3:]] == ["expire"] * 3
    assert await state_of(admin) == before


async def test_apply_settles_one_tenant_and_leaves_the_other(world: World) -> None:
    admin = world.admin
    # Replacements are sent but never land, so they stay live for the tx tests below.
    world.localnet.set_faults(drop_rate=1.0)
    b_before = await attempt_of(admin, world.b[0], "mint")
    report = run_json(world.stack, "reconcile", "--older-than", "0s", "--apply",
                      "--tenant", world.tenant_a)
    assert report["summary"]["mode"] == "apply" and report["summary"]["errors"] == 0
    applied = {(f["ticket_id"], f["op"]): f["applied"] for f in report["findings"]}
    assert applied[(world.a[2], "mint")] == "confirmed"
    assert applied[(world.a[1], "burn")] == "failed"
    assert [applied[(t, "mint")] for t in world.a[3:]] == ["replaced"] * 3

    rows = {r["id"]: r for r in await admin.fetch(
        "SELECT id, status, token_mint FROM tickets WHERE tenant_id = $1",
        UUID(world.tenant_a))}
    assert rows[UUID(world.a[2])]["status"] == "minted" and rows[UUID(world.a[2])]["token_mint"]
    burn_request = await admin.fetchrow(
        "SELECT status, outcome_code FROM chain_requests WHERE ticket_id = $1 AND operation = "
        "'burn'", UUID(world.a[1]))
    assert burn_request["status"] == "failed" and burn_request["outcome_code"]
    for ticket in world.a[3:]:
        newest = await attempt_of(admin, ticket, "mint")
        assert (newest["attempt"], newest["status"]) == (2, "pending")

    # Tenant B was not touched.
    b_after = await attempt_of(admin, world.b[0], "mint")
    assert (b_after["id"], b_after["status"]) == (b_before["id"], "pending")

    expired = run_json(world.stack, "reconcile", "--older-than", "0s", "--apply",
                       "--tenant", world.tenant_b, MAX_RETRIES="0")
    assert [f["applied"] for f in expired["findings"]] == ["expired"]
    request = await admin.fetchrow(
        "SELECT status, outcome_code FROM chain_requests WHERE ticket_id = $1", UUID(world.b[0]))
    assert (request["status"], request["outcome_code"]) == ("expired", "expired")
    assert await admin.fetchval(
        "SELECT count(*) FROM outbox WHERE aggregate_id = $1 AND event_type = "
        "'ticket.chain_failed'", UUID(world.b[0])) == 1

    # What is left live is the fresh replacements: they wait.
    left = run_json(world.stack, "reconcile", "--older-than", "0s")
    assert sorted(verdicts(left)) == sorted((t, "mint") for t in world.a[3:])
    assert set(verdicts(left).values()) == {"wait"}


async def test_holders_finds_drift_and_records_what_policy_allows(world: World) -> None:
    admin = world.admin
    owner_0 = await admin.fetchval("SELECT user_id FROM tickets WHERE id = $1", UUID(world.a[0]))
    owner_2 = await admin.fetchval("SELECT user_id FROM tickets WHERE id = $1", UUID(world.a[2]))
    assert owner_0 != owner_2, "seeding spreads tickets over the users"
    other = next(UUID(u) for u in world.users_a if UUID(u) not in (owner_0, owner_2))
    # The database lost a move: a[0] is recorded for another user than the chain's holder.
    await admin.execute("UPDATE tickets SET user_id = $2 WHERE id = $1", UUID(world.a[0]), other)
    # a[2]'s user registered a new wallet after the mint: the NFT stays where it was sent,
    # and that is no drift...
    await admin.execute(
        "INSERT INTO wallets (tenant_id, user_id, address) VALUES ($1, $2, $3)",
        UUID(world.tenant_a), owner_2, str(Keypair().pubkey()),
    )
    # ...but a[2]'s NFT was moved on chain to a wallet nobody registered: no known wallet.
    moved = await admin.fetchrow(
        "SELECT token_mint, wallet_address FROM tickets WHERE id = $1", UUID(world.a[2])
    )
    world.localnet.set_faults(drop_rate=0.0)
    async with SolanaRpc([world.localnet.rpc_url]) as rpc:
        blockhash, _ = await rpc.latest_blockhash()
        elsewhere = nft.build_transfer(
            authority=load_authority(load_settings(state_dir=world.stack.state_dir)),
            mint=Pubkey.from_string(moved["token_mint"]),
            from_holder=Pubkey.from_string(moved["wallet_address"]),
            to_holder=Keypair().pubkey(), memo="elsewhere", recent_blockhash=blockhash,
        )
        await rpc.send_raw(elsewhere.raw)
        world.localnet.set_faults(warp_slots=2)
        await rpc.wait_for_confirmation(elsewhere.signature, 10)
    sync_before = await admin.fetchval("SELECT count(*) FROM blockchain_sync_log")

    report = run_json(world.stack, "reconcile", "holders")
    kinds = {d["ticket_id"]: d["kind"] for d in report["drifts"]}
    assert kinds == {
        world.a[0]: "holder_other_user",
        world.a[1]: "supply_zero",  # burned on chain, minted in the database
        world.a[2]: "holder_unknown",
    }
    assert report["summary"]["checked"] == 3 and report["summary"]["recorded"] == 0
    assert await admin.fetchval("SELECT user_id FROM tickets WHERE id = $1",
                                UUID(world.a[0])) == other
    assert await admin.fetchval(
        "SELECT count(*) FROM blockchain_sync_log WHERE operation = 'reconcile_holder' "
        "AND status = 'pending'") == 3

    applied = run_json(world.stack, "reconcile", "holders", "--apply")
    recorded = {d["ticket_id"]: d["recorded"] for d in applied["drifts"]}
    assert recorded == {world.a[0]: True, world.a[1]: False, world.a[2]: False}
    assert await admin.fetchval("SELECT user_id FROM tickets WHERE id = $1",
                                UUID(world.a[0])) == owner_0
    assert await admin.fetchval(
        "SELECT count(*) FROM blockchain_sync_log WHERE operation = 'reconcile_holder' "
        "AND status = 'reconciled'") == 1
    assert await admin.fetchval("SELECT count(*) FROM blockchain_sync_log") == sync_before + 6

    # The right user holds it, but the recorded address is wrong: the chain's is recorded.
    chain_holder = await admin.fetchval(
        "SELECT wallet_address FROM tickets WHERE id = $1", UUID(world.a[0]))
    await admin.execute("UPDATE tickets SET wallet_address = $2 WHERE id = $1",
                        UUID(world.a[0]), str(Keypair().pubkey()))
    stale = run_json(world.stack, "reconcile", "holders", "--apply", "--tenant", world.tenant_a)
    assert {d["ticket_id"]: (d["kind"], d["recorded"]) for d in stale["drifts"]}[world.a[0]] == (
        "wallet_stale", True)
    assert await admin.fetchval(
        "SELECT wallet_address FROM tickets WHERE id = $1", UUID(world.a[0])) == chain_holder

    clean = run_json(world.stack, "reconcile", "holders", "--tenant", world.tenant_b, expect=0)
    assert clean["summary"] == {"checked": 0, "drifts": 0, "recorded": 0, "mode": "dry-run"}


async def test_tx_show_by_request_and_by_signature(world: World) -> None:
    landed = await attempt_of(world.admin, world.a[2], "mint")
    shown = run_json(world.stack, "tx", "show", str(landed["request_id"]), expect=0)
    assert shown["request"]["status"] == "confirmed"
    assert shown["tenant_id"] == world.tenant_a
    (attempt,) = shown["attempts"]
    assert attempt["status"] == "confirmed"
    assert attempt["chain"]["confirmation_status"] in ("confirmed", "finalized")
    assert attempt["logs"]

    burn = await attempt_of(world.admin, world.a[1], "burn")
    by_signature = run_json(world.stack, "tx", "show", burn["tx_signature"], expect=0)
    assert [a["status"] for a in by_signature["attempts"]] == ["failed"]
    assert by_signature["attempts"][0]["chain"]["err"]
    text = run(world.stack, "tx", "show", burn["tx_signature"])
    assert text.returncode == 0 and "failed" in text.stdout and "logs of attempt 1" in text.stdout


async def test_tx_retry_requeues_and_enqueues(world: World) -> None:
    request_id = (await attempt_of(world.admin, world.b[0], "mint"))["request_id"]
    before = await state_of(world.admin)
    # A confirmed request cannot be retried; nothing changes.
    confirmed = (await attempt_of(world.admin, world.a[2], "mint"))["request_id"]
    refused = run(world.stack, "tx", "retry", str(confirmed))
    assert refused.returncode == 2 and "only failed or expired" in refused.stderr
    assert await state_of(world.admin) == before

    assert run_json(world.stack, "tx", "retry", str(request_id), expect=0) == {
        "request_id": str(request_id), "status": "queued"}
    assert await world.admin.fetchval(
        "SELECT status FROM chain_requests WHERE id = $1", request_id) == "queued"
    redis = Redis.from_url(world.stack.redis_url)
    try:
        assert await redis.zscore(world.stack.queue, str(request_id)) is not None
        await redis.delete(world.stack.queue, arq_internals.job_key(str(request_id)))
    finally:
        await redis.aclose()
    assert await world.admin.fetchval(
        """SELECT details->>'action' FROM blockchain_sync_log
            WHERE entity_id = $1 AND entity_type = 'chain_request'""", request_id) == "retry"


async def test_tx_abandon_ends_the_live_attempt_with_an_audit_trail(world: World) -> None:
    admin = world.admin
    live = await attempt_of(admin, world.a[3], "mint")
    before = await state_of(admin)
    early = run(world.stack, "tx", "abandon", str(live["request_id"]), "--reason", "stuck")
    assert early.returncode == 2 and "--force" in early.stderr
    assert await state_of(admin) == before

    done = run_json(world.stack, "tx", "abandon", str(live["request_id"]), "--reason",
                    "venue cancelled", "--force", expect=0)
    assert done["status"] == "abandoned"
    assert await admin.fetchval(
        "SELECT status FROM pending_transactions WHERE id = $1", live["id"]) == "expired"
    request = await admin.fetchrow(
        "SELECT status, outcome_message FROM chain_requests WHERE id = $1", live["request_id"])
    assert (request["status"], request["outcome_message"]) == ("abandoned", "venue cancelled")
    audit = await admin.fetchrow(
        "SELECT status, details FROM blockchain_sync_log WHERE entity_id = $1",
        live["request_id"])
    assert audit["status"] == "skipped" and json.loads(audit["details"])["action"] == "abandon"
    history = await admin.fetchrow(
        "SELECT source, actor_type, reason FROM ticket_state_history WHERE ticket_id = $1 "
        "ORDER BY id DESC LIMIT 1", UUID(world.a[3]))
    assert (history["source"], history["actor_type"]) == ("reconcile", "admin")
    assert "venue cancelled" in history["reason"]

    again = run(world.stack, "tx", "abandon", str(live["request_id"]), "--reason", "twice")
    assert again.returncode == 2 and "not live" in again.stderr


async def test_bad_ids_and_arguments_change_nothing(world: World) -> None:
    before = await state_of(world.admin)
    cases = [
        (("tx", "show", "not-an-id"), "neither a request id"),
        (("tx", "show", str(uuid4())), "no request or transaction"),
        (("tx", "retry", "42"), "not a request id"),
        (("tx", "abandon", str(uuid4()), "--reason", "x"), "no request or transaction"),
        (("reconcile", "--older-than", "2x"), "not a duration"),
        (("reconcile", "--tenant", "tenant-b"), "not a UUID"),
        (("reconcile", "--op", "swap"), "--op must be"),
        (("reconcile", "holders", "--tenant", "nope"), "not a UUID"),
    ]
    for args, message in cases:
        result = run(world.stack, *args)
        assert result.returncode == 2, (args, result.stdout, result.stderr)
        assert message in result.stderr, (args, result.stderr)
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert await state_of(world.admin) == before


async def test_unreachable_services_exit_2_in_one_line(world: World, tmp_path: Path) -> None:
    dead_chain = run(world.stack, "reconcile", "--older-than", "0s",
                     SOLANA_RPC_URLS="http://127.0.0.1:9", RPC_MAX_ATTEMPTS="1")
    assert dead_chain.returncode == 2 and dead_chain.stderr.startswith("chainworker: Solana")
    dead_db = run(world.stack, "reconcile",
                  DATABASE_URL="postgresql://chainworker_app@127.0.0.1:9/none")
    assert dead_db.returncode == 2
    assert len(dead_db.stderr.strip().splitlines()) == 1, dead_db.stderr
