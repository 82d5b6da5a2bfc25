"""`chainworker demo`: the whole pipeline on the embedded defaults, checked against the chain.

Migrates, seeds a tenant, starts a localnet (unless SOLANA_RPC_URLS is set) and a
worker process, creates the event's collection, mints every ticket (each joins the
collection as soon as it confirms), transfers some, checks some in (the ticket service's
status change, which puts `checked_in_at` on the NFT), revokes and refunds some, shows
live progress, prints a summary and exits non-zero unless the database and the chain
agree: holders, supply, membership, the check-in on each NFT, closed accounts.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Annotated
from uuid import UUID

import asyncpg
import typer
from arq.connections import ArqRedis, RedisSettings
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from solders.pubkey import Pubkey

from chainworker import services
from chainworker.chain.keys import Seed, custodial_wallet, load_custodial_seed
from chainworker.chain.nft import holder_token_account
from chainworker.chain.rpc import SolanaRpc
from chainworker.config import Settings, get_settings
from chainworker.db import requests
from chainworker.db import seed as seed_data
from chainworker.db import tickets as ticket_queries
from chainworker.db.migrate import migrate
from chainworker.db.pool import create_pool, tenant_transaction
from chainworker.db.requests import NewRequest
from chainworker.jobs.codec import create_arq_pool
from chainworker.jobs.enqueue import request_operation
from chainworker.lifecycle.model import BurnReason, RequestStatus, TxOp

console = Console()
CHECK_CONCURRENCY = 32
CHECKED_IN = ("checked_in", "used")


@dataclass
class DemoRun:
    settings: Settings
    pool: asyncpg.Pool
    arq: ArqRedis
    queue: str
    tenant: UUID
    phase_seconds: dict[str, float] = field(default_factory=dict)


@dataclass
class Mismatch:
    ticket_id: UUID
    problem: str


@contextmanager
def _localnet(settings: Settings, slot_ms: int) -> Iterator[str]:
    """The configured RPC endpoints, or a localnet of our own for the run."""
    if "solana_rpc_urls" in settings.model_fields_set:
        yield ",".join(settings.solana_rpc_urls)
        return
    from chainworker.localnet.process import start_localnet

    with start_localnet(slot_ms=slot_ms) as node:
        console.print(f"localnet: {node.rpc_url} (slot {slot_ms} ms)")
        yield node.rpc_url


@contextmanager
def _worker(env: dict[str, str], log_path: str) -> Iterator[subprocess.Popen[bytes]]:
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "chainworker", "worker", "--metrics-port", "0"],
            env=env, stdout=log, stderr=subprocess.STDOUT,
        )
        try:
            yield process
        finally:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()


def _create_group(env: dict[str, str], tenant: UUID, event: UUID) -> str:
    """`chainworker event create-group`, as an operator runs it: the group's address."""
    done = subprocess.run(
        [sys.executable, "-m", "chainworker", "event", "create-group", "--tenant", str(tenant),
         "--event", str(event), "--json"],
        env=env, capture_output=True, text=True, check=False,
    )
    if done.returncode != 0:
        raise services.ServiceError(f"event create-group failed: {done.stderr.strip()}")
    return str(json.loads(done.stdout)["group_mint"])


async def _statuses(run: DemoRun, operation: str) -> dict[str, int]:
    async with tenant_transaction(run.pool, run.tenant, reason="demo") as conn:
        return await requests.status_counts(conn, operation)


async def _run_phase(
    run: DemoRun, progress: Progress, label: str, operation: TxOp, items: list[NewRequest]
) -> None:
    if not items:
        return
    started = time.monotonic()
    await request_operation(
        run.pool, run.arq, run.queue, run.tenant, operation, items, source="demo"
    )
    await _settled(run, progress, label, operation, len(items), started)


async def _settled(
    run: DemoRun, progress: Progress, label: str, operation: TxOp, expected: int,
    started: float,
) -> None:
    """Until `expected` requests of the operation (however they were asked) have settled."""
    task = progress.add_task(label, total=expected)
    while True:
        statuses = await _statuses(run, operation)
        live = statuses.get(RequestStatus.QUEUED, 0) + statuses.get(RequestStatus.SUBMITTED, 0)
        done = sum(statuses.values()) - live
        progress.update(task, completed=done)
        if live == 0 and done >= expected:
            run.phase_seconds[operation] = time.monotonic() - started
            return
        await asyncio.sleep(0.25)


async def _check_chain(
    run: DemoRun, rpc: SolanaRpc, seed: Seed, group: str
) -> list[Mismatch]:
    """Every ticket the database says is on chain is on chain, held by whom it says, a
    member of its event's group (`group`), its check-in on its NFT when it was checked in;
    every burned one's mint and token account are closed."""
    async with tenant_transaction(run.pool, run.tenant, reason="demo") as conn:
        rows = await ticket_queries.tickets_with_mints(conn)
    gate = asyncio.Semaphore(CHECK_CONCURRENCY)

    async def check(row: ticket_queries.TicketRow) -> Mismatch | None:
        async with gate:
            assert row.token_mint is not None and row.user_id is not None
            mint = Pubkey.from_string(row.token_mint)
            state = await rpc.get_mint_state(mint)
            expected = custodial_wallet(seed, run.tenant, row.user_id)
            if row.status in ("revoked", "refunded"):
                # Every mint of the run has the close authority: its burn closed the mint
                # and the custodial holder's token account, and their rent came back.
                if state is not None:
                    return Mismatch(row.id, f"burned but its mint is open (supply {state.supply})")
                if await rpc.get_account(holder_token_account(expected, mint)) is not None:
                    return Mismatch(row.id, "burned but the holder's token account is open")
                return None
            if state is None:
                return Mismatch(row.id, "mint account missing on chain")
            if state.supply != 1:
                return Mismatch(row.id, f"supply {state.supply}, expected 1")
            holder = await rpc.get_token_holder(mint)
            if holder is None or holder[0] != expected:
                return Mismatch(row.id, f"held by {holder}, expected {expected}")
            member = state.groups.member
            if member is None or str(member.group) != group:
                return Mismatch(row.id, f"not a member of the event's group {group}")
            if row.status in CHECKED_IN:
                on_chain = state.metadata.field("status") if state.metadata else None
                stamped = state.metadata.field("checked_in_at") if state.metadata else None
                if on_chain != row.status or not stamped:
                    return Mismatch(row.id, f"{row.status} but its NFT says status={on_chain}, "
                                            f"checked_in_at={stamped}")
            return None

    found = await asyncio.gather(*(check(row) for row in rows))
    return [m for m in found if m is not None]


async def _summary(run: DemoRun) -> Table:
    async with tenant_transaction(run.pool, run.tenant, reason="demo") as conn:
        rows = await requests.outcome_summary(conn)
    table = Table("operation", "outcome", "count", "retries", "p50 s", "p99 s", "per second",
                  title=f"chainworker demo: tenant {run.tenant}")
    for row in rows:
        table.add_row(
            row.operation, row.status, str(row.count), str(row.retries),
            f"{row.p50_seconds:.2f}", f"{row.p99_seconds:.2f}",
            _rate(row.count, run.phase_seconds.get(row.operation))
            if row.status is RequestStatus.CONFIRMED else "",
        )
    return table


def _rate(count: int, seconds: float | None) -> str:
    return f"{count / seconds:.1f}" if seconds else ""


async def _demo(settings: Settings, tickets: int, slot_ms: int) -> int:
    pg, redis = await services.resolve_postgres(settings), await services.resolve_redis(settings)
    console.print(f"postgresql: {pg.origin}   redis: {redis.origin}")
    applied = await migrate(pg.admin_dsn)
    console.print(f"migrations: {len(applied)} applied" if applied else "migrations: up to date")
    queue = f"chainworker:demo:{uuid.uuid4().hex[:8]}"
    pool = await create_pool(pg.app_dsn, settings)
    # The ticket service's side (tenant, tickets, accepted transfers) is seeded as the owner.
    owner = await asyncpg.connect(pg.admin_dsn)
    arq = await create_arq_pool(RedisSettings.from_dsn(redis.url))
    try:
        seeded = await seed_data.seed_tenant(
            owner, tickets=tickets, users=max(2, tickets // 10), tenant_name="Demo Tenant"
        )
        console.print(f"seeded tenant {seeded.tenant_id}: {tickets} sold tickets")
        run = DemoRun(settings, pool, arq, queue, seeded.tenant_id)
        with _localnet(settings, slot_ms) as rpc_urls:
            env = {
                **os.environ, "DATABASE_URL": pg.app_dsn, "DATABASE_ADMIN_URL": pg.admin_dsn,
                "REDIS_URL": redis.url, "SOLANA_RPC_URLS": rpc_urls, "QUEUE_NAME": queue,
                "STATE_DIR": str(settings.state_dir.resolve()), "METRICS_PORT": "0",
                "LOG_FORMAT": "json",
            }
            settings.state_dir.mkdir(parents=True, exist_ok=True)
            log_path = str(settings.state_dir / "demo-worker.log")
            with _worker(env, log_path):
                group = _create_group(env, seeded.tenant_id, seeded.event_id)
                console.print(f"event {seeded.event_id}: collection {group}")
                with Progress(
                    TextColumn("{task.description:<10}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), console=console,
                ) as progress:
                    await _run_phase(run, progress, "mint", TxOp.MINT,
                                     [NewRequest(t, TxOp.MINT) for t in seeded.ticket_ids])
                    # Each mint asked for its own verify as it confirmed.
                    await _settled(run, progress, "verify", TxOp.VERIFY, tickets,
                                   time.monotonic())
                    share = max(1, tickets // 10)
                    movers = seeded.ticket_ids[:share]
                    burners = seeded.ticket_ids[share: 2 * share]
                    attendees = seeded.ticket_ids[2 * share: 3 * share]
                    transfers = await seed_data.accepted_transfers(
                        owner, seeded.tenant_id, movers, seeded.user_ids[-1]
                    )
                    async with tenant_transaction(pool, seeded.tenant_id) as conn:
                        moving = await ticket_queries.transfer_tickets(conn, transfers)
                    await _run_phase(run, progress, "transfer", TxOp.TRANSFER, [
                        NewRequest(ticket, TxOp.TRANSFER, transfer_id=transfer)
                        for transfer, ticket in moving.items()
                    ])
                    # The ticket service marks tickets scanned; its status change asks for
                    # checked_in_at on each NFT (through the outbox), unasked by the demo.
                    checked_in = time.monotonic()
                    await seed_data.check_in(owner, seeded.tenant_id, attendees)
                    await _settled(run, progress, "check-in", TxOp.METADATA_UPDATE,
                                   len(attendees), checked_in)
                    await _run_phase(run, progress, "burn", TxOp.BURN, [
                        NewRequest(t, TxOp.BURN,
                                   reason=BurnReason.REVOKE if i % 2 else BurnReason.REFUND)
                        for i, t in enumerate(burners)
                    ])
            console.print(await _summary(run))
            async with SolanaRpc(rpc_urls.split(",")) as rpc:
                mismatches = await _check_chain(run, rpc, load_custodial_seed(settings), group)
        if mismatches:
            console.print(f"[red]database and chain disagree on {len(mismatches)} ticket(s):")
            for mismatch in mismatches[:20]:
                console.print(f"  {mismatch.ticket_id}: {mismatch.problem}")
            return 1
        console.print("[green]database and chain agree on every ticket.")
        return 0
    finally:
        await arq.aclose()
        await owner.close()
        await pool.close()


def demo(
    tickets: Annotated[int, typer.Option(min=1, max=100_000, help="Tickets to mint.")] = 200,
    slot_ms: Annotated[int, typer.Option(min=10, max=2000, help="Localnet slot time.")] = 100,
) -> None:
    """Run the whole pipeline (migrate, seed, mint, transfer, burn) and check the chain."""
    try:
        code = asyncio.run(_demo(get_settings(), tickets, slot_ms))
    except (services.ServiceError, OSError) as error:
        typer.echo(f"chainworker: {error}", err=True)
        raise typer.Exit(2) from None
    raise typer.Exit(code)


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)
