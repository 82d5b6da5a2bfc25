"""End-to-end worker throughput: request recorded -> ticket minted, against the localnet.

Run: python bench/worker_throughput.py [--tickets 6000] [--slot-ms 400] [--extra-workers 0]
                                      [--rate R] [--pkcs11]

In one run it measures
- the localnet's raw sendTransaction capacity for the transactions the worker sends:
  `--tickets` ticket NFT mints built by `chain/nft.py` (mint account with its
  extensions and metadata, holder's account, MintToChecked, authority removed, memo),
  pre-signed, sent over HTTP by 8 connections, counted until every one has landed;
- the same for a plain Token-2022 mint (four instructions), for scale;
- one worker (in this process, so its database statements can be counted) minting
  `--tickets` recorded requests: confirmed mints per second, p50/p99 latency from
  request recorded to ticket minted, and database statements per mint;
and prints the ratio of the worker's rate to the first. For scale it also measures Arq
alone: how many no-op jobs one process runs per second with the worker's settings (the
ceiling of the job machinery before any work). `--extra-workers K` starts K more
`chainworker worker` processes on the same queue (statements are then counted for
this process only, so none is printed). `--rate R` offers the requests at R per second
instead of all at once, for the latency of a worker below saturation (the requests are
recorded while the worker runs, so statements per mint are not printed then). It
creates its own database and drops it. The localnet runs with its block limits off
(`--no-block-limits`): the bench measures raw execution capacity, which 60M-unit blocks
and 24M units per write-locked account (one fee payer's share) would cap first.
`--pkcs11` makes the in-process worker's authority a key in a SoftHSM2 token of the
bench's own (bench/softhsm_token.py), for the mint rate with the HSM signer (not with
`--extra-workers`: those processes could not share the token's key here).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, Protocol

import asyncpg
from arq.connections import RedisSettings
from arq.worker import func
from solders.hash import Hash
from solders.keypair import Keypair
from solders.transaction import VersionedTransaction

from chainworker import services
from chainworker.chain import nft
from chainworker.config import load_settings
from chainworker.db import seed as seed_data
from chainworker.db.migrate import migrate
from chainworker.db.pool import create_pool
from chainworker.db.requests import NewRequest
from chainworker.jobs import codec
from chainworker.jobs.batch_start import BatchStartWorker
from chainworker.jobs.codec import create_arq_pool
from chainworker.jobs.enqueue import drop_queue, request_operation
from chainworker.jobs.worker import make_worker
from chainworker.lifecycle.model import TxOp
from chainworker.localnet.process import start_localnet
from chainworker.pipeline.fees import ADDRESS_SEARCH_STEP_UNITS, unit_limit
from softhsm_token import softhsm_token

sys.path.insert(0, str(Path(__file__).parent))
from localnet_throughput import SOL, UNLIMITED, fund, measure_send, rpc, token_2022_mints

STATEMENTS = {"count": 0}


def count_statements() -> None:
    """Count every statement asyncpg sends from this process (the worker's included)."""
    connection: Any = asyncpg.connection.Connection  # patched: private methods, untyped
    if getattr(connection, "_bench_counted", False):
        return  # patched by an earlier run of this process
    connection._bench_counted = True
    original_execute = connection._execute
    original_simple = connection.execute

    async def counted_execute(self: Any, *args: Any, **kwargs: Any) -> Any:
        STATEMENTS["count"] += 1
        return await original_execute(self, *args, **kwargs)

    async def counted_simple(self: Any, query: str, *args: Any, **kwargs: Any) -> Any:
        if not args:  # with arguments, execute() goes through _execute
            STATEMENTS["count"] += 1
        return await original_simple(self, query, *args, **kwargs)

    connection._execute = counted_execute
    connection.execute = counted_simple


class Probe(Protocol):
    """Watches a run of the mint flow (bench/db_cost.py measures CPU with one)."""

    def start(self, database: str) -> None:
        """The requests are about to be offered, to the worker of database `database`."""

    def stop(self) -> None:
        """No request is live any more."""


def start_workers(count: int, env: dict[str, str]) -> list[subprocess.Popen[bytes]]:
    return [
        subprocess.Popen(
            [sys.executable, "-m", "chainworker", "worker"], env={**os.environ, **env},
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        for _ in range(count)
    ]


def stop_workers(workers: list[subprocess.Popen[bytes]]) -> None:
    for worker in workers:
        worker.terminate()
    for worker in workers:
        try:
            worker.wait(timeout=15)
        except subprocess.TimeoutExpired:
            worker.kill()


async def offer(
    pool: asyncpg.Pool, arq: Any, queue: str, seeded: seed_data.Seeded, rate: int | None
) -> None:
    """Record and enqueue a mint for every seeded ticket: all at once, or `rate` per second."""
    requests = [NewRequest(t, TxOp.MINT) for t in seeded.ticket_ids]
    if rate is None:
        await request_operation(
            pool, arq, queue, seeded.tenant_id, TxOp.MINT, requests, source="cli"
        )
        return
    tick = 0.05
    per_tick = max(1, round(rate * tick))
    started = time.monotonic()
    for index, offset in enumerate(range(0, len(requests), per_tick)):
        await asyncio.sleep(max(0.0, started + index * tick - time.monotonic()))
        await request_operation(
            pool, arq, queue, seeded.tenant_id, TxOp.MINT, requests[offset : offset + per_tick],
            source="cli",
        )


async def run_worker_bench(
    rpc_url: str, tickets: int, extra_workers: int = 0, rate: int | None = None,
    *, probe: Probe | None = None, migrations: Path | None = None,
    authority: dict[str, str] | None = None,
) -> dict[str, float]:
    """The mint flow: a new database (`migrations`, default the repository's), a tenant with
    `tickets` sold tickets, one worker in this process; `probe` watches the timed part."""
    base = load_settings()
    server, origin = await services.find_postgres_server(base)
    name = f"cw_bench_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(server.admin_dsn("postgres"))
    await admin.execute(f'CREATE DATABASE "{name}"')
    redis = await services.resolve_redis(base)
    state = Path(tempfile.mkdtemp(prefix="cw-bench-"))
    queue = f"chainworker:bench:{uuid.uuid4().hex[:8]}"
    settings = load_settings(
        solana_rpc_urls=rpc_url, state_dir=state, queue_name=queue, metrics_port=0,
        log_level="WARNING", log_format="json", **(authority or {}),
    )
    try:
        await migrate(server.admin_dsn(name), migrations)
        pool = await create_pool(server.app_dsn(name), settings)
        arq = await create_arq_pool(RedisSettings.from_dsn(redis.url))
        owner = await asyncpg.connect(server.admin_dsn(name))  # the ticket service's data
        try:
            seeded = await seed_data.seed_tenant(
                owner, tickets=tickets, users=max(2, tickets // 20)
            )
        finally:
            await owner.close()
        worker = make_worker(settings, server.app_dsn(name), redis.url)
        running = asyncio.create_task(worker.async_run())
        await asyncio.sleep(2.0)  # startup: pool, keys, airdrop
        extra = start_workers(extra_workers, {
            "DATABASE_URL": server.app_dsn(name), "DATABASE_ADMIN_URL": server.admin_dsn(name),
            "REDIS_URL": redis.url, "SOLANA_RPC_URLS": rpc_url, "STATE_DIR": str(state),
            "QUEUE_NAME": queue, "METRICS_PORT": "0", "LOG_LEVEL": "WARNING",
        })
        await asyncio.sleep(3.0 if extra else 0.0)
        count_statements()
        if probe is not None:
            probe.start(name)
        started = time.monotonic()
        await offer(pool, arq, queue, seeded, rate)
        statements_before = STATEMENTS["count"]
        # Every request is recorded by now: wait until none is live. One connection, and
        # a count over the live requests' partial index, not a scan of them all per poll.
        watcher = await asyncpg.connect(server.admin_dsn(name))
        while True:
            if await live_count(watcher) == 0:
                break
            await asyncio.sleep(0.1)
        elapsed = time.monotonic() - started
        if probe is not None:
            probe.stop()
        await watcher.close()
        statements = STATEMENTS["count"] - statements_before
        conn = await asyncpg.connect(server.admin_dsn(name))
        latencies = [
            row["seconds"] for row in await conn.fetch(
                """SELECT extract(epoch FROM completed_at - created_at)::float8 AS seconds
                     FROM chain_requests WHERE status = 'confirmed'"""
            )
        ]
        attempts = await conn.fetchval("SELECT count(*) FROM pending_transactions")
        # How long recording every first attempt took (the submit side alone).
        submit_seconds = await conn.fetchval(
            """SELECT extract(epoch FROM max(p.submitted_at) - min(r.created_at))::float8
                 FROM pending_transactions p JOIN chain_requests r ON r.id = p.request_id
                WHERE p.attempt = 1"""
        )
        await conn.close()
        stop_workers(extra)
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await running
        await worker.close()
        await arq.aclose()
        await pool.close()
        quantiles = statistics.quantiles(latencies, n=100)
        return {
            "postgres": 0.0 if origin == "local" else 1.0,
            "mints": float(tickets),
            "attempts": float(attempts),
            "seconds": elapsed,
            "mints_per_s": tickets / elapsed,
            "submitted_per_s": tickets / submit_seconds,
            "p50_s": statistics.median(latencies),
            "p99_s": quantiles[98],
            "statements_per_mint": statements / tickets,
        }
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def arq_floor(jobs: int) -> float:
    """No-op jobs per second through Arq alone, with the worker's queue settings."""
    settings = load_settings()
    redis = await services.resolve_redis(settings)
    queue = f"chainworker:bench:noop:{uuid.uuid4().hex[:8]}"
    arq = await create_arq_pool(RedisSettings.from_dsn(redis.url))

    async def noop(ctx: dict[str, Any], request_id: str, tenant_id: str) -> None:
        return None

    try:
        tenant = str(uuid.uuid4())  # the codec runs only our jobs: a no-op under a job's name
        for n in range(jobs):
            await arq.enqueue_job("mint_ticket", str(uuid.uuid4()), tenant, _job_id=f"{queue}:{n}",
                                  _queue_name=queue)
        worker = BatchStartWorker(
            functions=[func(noop, name="mint_ticket")], queue_name=queue,
            redis_settings=RedisSettings.from_dsn(redis.url),
            max_jobs=settings.worker_max_jobs, poll_delay=settings.worker_poll_delay_seconds,
            keep_result=0, burst=True, handle_signals=False, log_results=False,
            job_serializer=codec.serialize, job_deserializer=codec.deserialize,
        )
        started = time.monotonic()
        await worker.async_run()
        elapsed = time.monotonic() - started
        await worker.close()
        return jobs / elapsed
    finally:
        await drop_queue(arq, queue)
        await arq.aclose()


def ticket_nft_mints(url: str, count: int) -> list[VersionedTransaction]:
    """`count` ticket mints as the worker builds them: one payer, its compute budget."""
    settings = load_settings()
    authority = fund(url, 1, 1_000 * SOL)[0]
    blockhash = Hash.from_string(
        rpc(url, "getLatestBlockhash", [{"commitment": "processed"}])["value"]["blockhash"]
    )

    holders = [Keypair().pubkey() for _ in range(count)]
    mints = [Keypair() for _ in range(count)]

    def build(index: int, compute: nft.ComputeBudget | None) -> VersionedTransaction:
        ticket_id, event_id = uuid.uuid4(), uuid.uuid4()
        return nft.build_mint(
            authority=authority, mint=mints[index], holder=holders[index],
            name=f"Benchmark Night #{index}", symbol=settings.nft_symbol,
            uri=f"https://tickets.example.com/{event_id}/{ticket_id}.json",
            ticket_id=ticket_id, event_id=event_id, memo=f"cw:{uuid.uuid4()}:1",
            recent_blockhash=blockhash, compute=compute,
        ).transaction

    def steps(index: int) -> int:
        return nft.address_search_steps(holders[index], mints[index].pubkey())

    # The worker's budget (pipeline.fees): one simulation of the kind, each transaction's
    # own address search, a unit price instruction.
    simulated = rpc(url, "simulateTransaction", [
        base64.b64encode(bytes(build(0, None))).decode(),
        {"encoding": "base64", "commitment": "processed"},
    ])["value"]["unitsConsumed"]
    base = simulated - steps(0) * ADDRESS_SEARCH_STEP_UNITS
    return [
        build(index, nft.ComputeBudget(
            unit_limit=unit_limit(settings, base, steps(index)), unit_price_microlamports=0
        ))
        for index in range(count)
    ]


async def live_count(conn: asyncpg.Connection) -> int:
    return int(await conn.fetchval(
        "SELECT count(*) FROM chain_requests WHERE status IN ('queued', 'submitted')"
    ))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tickets", type=int, default=6000)
    parser.add_argument("--slot-ms", type=int, default=400)
    parser.add_argument("--extra-workers", type=int, default=0)
    parser.add_argument(
        "--rate", type=int, default=None,
        help="offer the requests at this many per second instead of all at once "
             "(latency below saturation; no capacity ratio then)",
    )
    parser.add_argument(
        "--pkcs11", action="store_true",
        help="the worker's authority is a key in a SoftHSM2 token of the bench's own",
    )
    args = parser.parse_args()
    if args.pkcs11 and args.extra_workers:
        parser.error("--pkcs11 runs one worker: leave out --extra-workers")
    with contextlib.ExitStack() as stack:
        token = stack.enter_context(softhsm_token()) if args.pkcs11 else None
        bench(args, None if token is None else token.settings())


def bench(args: argparse.Namespace, authority: dict[str, str] | None) -> None:
    with start_localnet(slot_ms=args.slot_ms, extra_args=UNLIMITED) as node:
        plain = measure_send(
            node.rpc_url, "plain mints", token_2022_mints(node.rpc_url, args.tickets), 1, 8
        )
        raw = measure_send(
            node.rpc_url, "ticket mints", ticket_nft_mints(node.rpc_url, args.tickets), 1, 8
        )
        result = asyncio.run(
            run_worker_bench(node.rpc_url, args.tickets, args.extra_workers, args.rate,
                             authority=authority)
        )
    raw_rate = raw["executed_per_s"]
    print(f"localnet: {args.slot_ms} ms slots, block limits off ({' '.join(UNLIMITED)})")
    floor = asyncio.run(arq_floor(args.tickets))
    print(f"localnet raw capacity, ticket NFT mints (executed): {raw_rate:,.0f}/s")
    print(f"localnet raw capacity, plain Token-2022 mints (executed), for scale: "
          f"{plain['executed_per_s']:,.0f}/s")
    processes = 1 + args.extra_workers
    signer = "PKCS#11 (SoftHSM2)" if authority else "local keypair"
    print(f"worker processes: {processes}, authority: {signer}")
    print(f"worker end to end: {result['mints']:.0f} mints in {result['seconds']:.1f} s "
          f"= {result['mints_per_s']:,.0f} confirmed mints/s "
          f"({result['attempts']:.0f} attempts)")
    print(f"submit side alone: {result['submitted_per_s']:,.0f} first attempts recorded/s")
    offered = "all at once" if args.rate is None else f"{args.rate:,}/s"
    print(f"latency request recorded -> minted (requests offered {offered}): "
          f"p50 {result['p50_s']:.2f} s, p99 {result['p99_s']:.2f} s")
    if processes == 1 and args.rate is None:
        print(f"database statements per mint: {result['statements_per_mint']:.1f}")
    if args.rate is None:
        print(f"ratio worker / raw capacity: {result['mints_per_s'] / raw_rate:.2f}")
    print(f"Arq alone, same settings: {floor:,.0f} no-op jobs/s "
          f"({1000 / floor:.2f} ms of the worker process per job before any work)")


if __name__ == "__main__":
    main()
