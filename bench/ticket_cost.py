"""What a ticket costs on chain over its whole life, in lamports, read back from the chain.

Run: python bench/ticket_cost.py [--tickets-per-kind 4] [--slot-ms 100]

One worker on a localnet mints tickets of one event whose collection exists, for custodial
holders and for holders with a wallet of their own; each mint joins the collection (its
verify); half of each are checked in (the ticket service's status change puts
`checked_in_at` and `status` on the NFT), the other half refunded (the burn closes the mint
and, for a custodial holder, the token account). A ticket minted the way earlier releases
did (no close authority, no collection) is refunded beside them.

Every figure is read from the chain: for each landed transaction of a ticket,
`getTransaction`'s fee (base: 5,000 per signature; the rest is the priority fee) and its
balances: lamports that went into accounts other than the fee payer are rent, lamports
that came out of closed accounts back to the payer are reclaimed. Each row is the mean per
ticket of its kind; SOL per 100,000 tickets is the net (fee + priority + rent - reclaimed).
The event's collection (created once per event, paid by the authority) is shown apart.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from arq.connections import RedisSettings
from solders.keypair import Keypair

from chainworker import services
from chainworker.chain import keys, nft
from chainworker.chain.fees import LAMPORTS_PER_SIGNATURE
from chainworker.chain.rpc import SolanaRpc
from chainworker.config import load_settings
from chainworker.db import seed as seed_data
from chainworker.db.migrate import migrate
from chainworker.db.pool import create_pool
from chainworker.db.requests import NewRequest
from chainworker.jobs.codec import create_arq_pool
from chainworker.jobs.enqueue import request_operation
from chainworker.jobs.worker import make_worker
from chainworker.lifecycle.model import BurnReason, TxOp
from chainworker.localnet.process import start_localnet

SOL = 1_000_000_000
LIFE_ORDER = [op.value for op in (TxOp.MINT, TxOp.VERIFY, TxOp.METADATA_UPDATE, TxOp.TRANSFER,
                                  TxOp.BURN)]


@dataclass
class Split:
    """One transaction's lamports, from the fee payer's side."""

    fee: int = 0
    priority: int = 0
    rent: int = 0
    reclaimed: int = 0

    def __iadd__(self, other: Split) -> Split:
        self.fee += other.fee
        self.priority += other.priority
        self.rent += other.rent
        self.reclaimed += other.reclaimed
        return self

    @property
    def net(self) -> int:
        return self.fee + self.priority + self.rent - self.reclaimed


def split(answer: dict[str, Any]) -> Split:
    """getTransaction's answer as fee, priority fee, rent paid and rent reclaimed.

    The fee payer is account 0; every other account whose balance rose took rent (a mint, a
    token account, a metadata update's top-up), every one whose balance fell was closed
    (its lamports went back to the payer). The payer's own change must be the sum of these:
    anything else (lamports sent elsewhere) would be a wrong reading, and is refused.
    """
    meta = answer["meta"]
    signatures = len(answer["transaction"]["signatures"])
    deltas = [post - pre for pre, post in zip(meta["preBalances"], meta["postBalances"],
                                              strict=True)]
    base = signatures * LAMPORTS_PER_SIGNATURE
    found = Split(
        fee=base, priority=meta["fee"] - base,
        rent=sum(d for d in deltas[1:] if d > 0), reclaimed=-sum(d for d in deltas[1:] if d < 0),
    )
    if deltas[0] != -found.net:
        raise ValueError(f"the payer's change {deltas[0]} is not -{found.net}")
    return found


async def transaction(client: httpx.AsyncClient, url: str, signature: str) -> dict[str, Any]:
    body = {"jsonrpc": "2.0", "id": 1, "method": "getTransaction", "params": [
        signature, {"encoding": "json", "maxSupportedTransactionVersion": 0,
                    "commitment": "confirmed"}]}
    answer = (await client.post(url, json=body)).json()
    if answer.get("result") is None:
        raise RuntimeError(f"no transaction {signature}: {answer}")
    return dict(answer["result"])


async def until(check: Callable[[], Awaitable[bool]], seconds: float = 120.0) -> None:
    deadline = time.monotonic() + seconds
    while not await check():
        if time.monotonic() > deadline:
            raise TimeoutError("the requests did not settle")
        await asyncio.sleep(0.2)


async def none_live(conn: asyncpg.Connection) -> bool:
    return not await conn.fetchval(
        "SELECT count(*) FROM chain_requests WHERE status IN ('queued', 'submitted')"
    )


async def run(args: argparse.Namespace, rpc_url: str) -> None:
    base = load_settings()
    server, _ = await services.find_postgres_server(base)
    redis = await services.resolve_redis(base)
    name = f"cw_cost_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(server.admin_dsn("postgres"))
    await admin.execute(f'CREATE DATABASE "{name}"')
    state = Path(tempfile.mkdtemp(prefix="cw-cost-"))
    try:
        await migrate(server.admin_dsn(name))
        await measure(args, rpc_url, server, name, redis.url, state)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def measure(
    args: argparse.Namespace, rpc_url: str, server: Any, name: str, redis_url: str,
    state: Path,
) -> None:
    queue = f"chainworker:cost:{uuid.uuid4().hex[:8]}"
    settings = load_settings(solana_rpc_urls=rpc_url, state_dir=state, queue_name=queue,
                             metrics_port=0, log_level="WARNING", log_format="json")
    per_kind = args.tickets_per_kind
    pool = await create_pool(server.app_dsn(name), settings)
    arq = await create_arq_pool(RedisSettings.from_dsn(redis_url))
    owner = await asyncpg.connect(server.admin_dsn(name))
    worker = make_worker(settings, server.app_dsn(name), redis_url)
    running = asyncio.create_task(worker.async_run())
    try:
        # 4 kinds x per_kind tickets, one user each, plus one ticket made the old way.
        count = 4 * per_kind + 1
        seeded = await seed_data.seed_tenant(owner, tickets=count, users=count)
        holders: dict[uuid.UUID, uuid.UUID] = {
            row["id"]: row["user_id"] for row in await owner.fetch(
                "SELECT id, user_id FROM tickets WHERE tenant_id = $1", seeded.tenant_id)
        }
        tickets = seeded.ticket_ids
        external = tickets[2 * per_kind: 4 * per_kind]
        for ticket in external:  # a wallet of their own
            await owner.execute(
                "INSERT INTO wallets (tenant_id, user_id, address) VALUES ($1, $2, $3)",
                seeded.tenant_id, holders[ticket], str(Keypair().pubkey()))
        legacy = tickets[-1]
        kinds = {
            "custodial, checked in": tickets[:per_kind],
            "custodial, refunded": tickets[per_kind: 2 * per_kind],
            "external, checked in": external[:per_kind],
            "external, refunded": external[per_kind:],
        }
        await until(lambda: _started(worker))  # keys, the authority funded
        env = {**os.environ, "DATABASE_URL": server.app_dsn(name),
               "DATABASE_ADMIN_URL": server.admin_dsn(name), "REDIS_URL": redis_url,
               "SOLANA_RPC_URLS": rpc_url, "QUEUE_NAME": queue, "STATE_DIR": str(state),
               "LOG_FORMAT": "json"}
        created = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "chainworker", "event", "create-group", "--tenant",
            str(seeded.tenant_id), "--event", str(seeded.event_id), "--json",
            env=env, stdout=asyncio.subprocess.PIPE)
        out, _ = await created.communicate()
        if created.returncode != 0:
            raise RuntimeError("event create-group failed")
        group = json.loads(out)
        old_mint = await mint_the_old_way(settings, owner, seeded, legacy, holders[legacy],
                                          rpc_url)

        async def ask(op: TxOp, items: list[NewRequest]) -> None:
            await request_operation(pool, arq, queue, seeded.tenant_id, op, items, source="demo")
            await until(lambda: none_live(owner))

        await ask(TxOp.MINT, [NewRequest(t, TxOp.MINT) for t in tickets[:-1]])
        await until(lambda: none_live(owner))  # the verifies each mint asked for
        attendees = kinds["custodial, checked in"] + kinds["external, checked in"]
        await seed_data.check_in(owner, seeded.tenant_id, attendees)
        await until(lambda: _all_updated(owner, len(attendees)))
        refunds = kinds["custodial, refunded"] + kinds["external, refunded"] + [legacy]
        await ask(TxOp.BURN, [NewRequest(t, TxOp.BURN, reason=BurnReason.REFUND)
                              for t in refunds])
        kinds["old layout, custodial, refunded"] = [legacy]
        await report(owner, rpc_url, kinds, group["signature"], (legacy, old_mint))
    finally:
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await running
        await worker.close()
        await owner.close()
        await arq.aclose()
        await pool.close()


async def _started(worker: Any) -> bool:
    return "pipeline" in worker.ctx


async def _all_updated(conn: asyncpg.Connection, expected: int) -> bool:
    done = await conn.fetchval(
        "SELECT count(*) FROM chain_requests WHERE operation = 'metadata_update'"
        " AND status NOT IN ('queued', 'submitted')")
    return bool(done >= expected and await none_live(conn))


async def mint_the_old_way(
    settings: Any, owner: asyncpg.Connection, seeded: Any, ticket: uuid.UUID,
    user: uuid.UUID, rpc_url: str,
) -> str:
    """A ticket minted as earlier releases did, recorded on the ticket as theirs were; the
    mint's signature."""
    authority = keys.load_authority(settings)
    holder = keys.custodial_wallet(keys.load_custodial_seed(settings), seeded.tenant_id, user)
    mint = Keypair()
    async with SolanaRpc([rpc_url]) as rpc:
        blockhash, _ = await rpc.latest_blockhash()
        signed = nft.build_mint(
            authority=authority, mint=mint, holder=holder, name="Old #1", symbol="TKT",
            uri="", ticket_id=ticket, event_id=seeded.event_id, memo="cw:old",
            recent_blockhash=blockhash, close_authority=False, group_member=False,
        )
        await rpc.send_raw(signed.raw)
        await rpc.wait_for_confirmation(signed.signature, 30)
    await owner.execute(
        "UPDATE tickets SET status = 'minted', token_mint = $2, wallet_address = $3"
        " WHERE id = $1", ticket, str(mint.pubkey()), str(holder))
    return str(signed.signature)


async def report(
    owner: asyncpg.Connection, rpc_url: str, kinds: dict[str, list[uuid.UUID]],
    group_signature: str, old_mint: tuple[uuid.UUID, str],
) -> None:
    rows = [dict(row) for row in await owner.fetch(
        """SELECT ticket_id, tx_type, tx_signature FROM pending_transactions
            WHERE status IN ('confirmed', 'failed')""")]
    rows.append({"ticket_id": old_mint[0], "tx_type": "mint", "tx_signature": old_mint[1]})
    async with httpx.AsyncClient(timeout=30) as client:
        per_ticket: dict[uuid.UUID, dict[str, Split]] = {}
        for row in rows:
            found = split(await transaction(client, rpc_url, row["tx_signature"]))
            per_ticket.setdefault(row["ticket_id"], {}).setdefault(row["tx_type"], Split())
            per_ticket[row["ticket_id"]][row["tx_type"]] += found
        group = split(await transaction(client, rpc_url, group_signature))
    print(f"{'ticket':<32} {'operation':<16} {'fee':>7} {'priority':>8} {'rent':>10} "
          f"{'reclaimed':>10} {'net':>10} {'SOL/100k':>9}")
    for kind, tickets in kinds.items():
        total = Split()
        ops: dict[str, Split] = {}
        for ticket in tickets:
            for op, figures in per_ticket.get(ticket, {}).items():
                ops.setdefault(op, Split())
                ops[op] += figures
                total += figures
        for op, figures in sorted(ops.items(), key=lambda item: LIFE_ORDER.index(item[0])):
            line(kind, op, figures, len(tickets))
            kind = ""
        line("", "whole life", total, len(tickets))
    line("the event's collection", "(once per event)", group, 1)


def line(kind: str, op: str, s: Split, n: int) -> None:
    print(f"{kind:<32} {op:<16} {s.fee / n:>7,.0f} {s.priority / n:>8,.0f} {s.rent / n:>10,.0f} "
          f"{s.reclaimed / n:>10,.0f} {s.net / n:>10,.0f} {s.net / n * 100_000 / SOL:>9,.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tickets-per-kind", type=int, default=4)
    parser.add_argument("--slot-ms", type=int, default=100)
    args = parser.parse_args()
    started = time.perf_counter()
    with start_localnet(slot_ms=args.slot_ms) as node:
        asyncio.run(run(args, node.rpc_url))
    print(f"({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
