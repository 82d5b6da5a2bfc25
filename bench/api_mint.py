"""API mint throughput: POST /v1/tickets/{id}/mint with 50 concurrent clients, idempotency on.

Run: python bench/api_mint.py [--requests 5000] [--clients 50] [--workers 1] [--rate R]

Creates a scratch database on the PostgreSQL chainworker finds (migrated, one tenant
with one sold ticket per request, a token), starts `chainworker api` as a subprocess,
and sends every mint once with its own Idempotency-Key over HTTP/1.1 keep-alive
connections (a minimal client, so the client's CPU does not hide the server's).
Each request does the full path: token check, idempotency acquire, ticket check,
recorded request + stored response in one transaction, Arq enqueue. Prints
requests/s and p50/p99 latency; drops the database and the queue afterwards.

By default each client sends its next request as soon as the last one is answered
(closed loop: latency is then clients / throughput). With `--rate R` requests are
sent on a fixed schedule of R per second over at most `--clients` connections, and
latency counts from the scheduled time (open loop: the latency a caller sees at that
load). On Linux it also prints the CPU the API processes and their PostgreSQL
backends used per request.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import time
import uuid
from collections import Counter

import asyncpg
import httpx
from redis.asyncio import Redis

from chainworker import services
from chainworker.api.tokens import issue_token
from chainworker.config import load_settings
from chainworker.db.migrate import migrate
from chainworker.db.seed import seed_tenant
from chainworker.jobs.enqueue import drop_queue


class RawClient:
    """HTTP/1.1 keep-alive client: one request in flight per connection."""

    def __init__(self, host: str, port: int, token: str) -> None:
        self.host, self.port, self.token = host, port, token
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    async def post(self, path: str, key: str) -> int:
        assert self.reader is not None and self.writer is not None
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {self.host}\r\n"
            f"Authorization: Bearer {self.token}\r\nIdempotency-Key: {key}\r\n"
            "Content-Length: 0\r\n\r\n"
        )
        self.writer.write(head.encode())
        await self.writer.drain()
        status_line = await self.reader.readline()
        length = 0
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b""):
                break
            name, _, value = line.decode().partition(":")
            if name.lower() == "content-length":
                length = int(value.strip())
        await self.reader.readexactly(length)
        return int(status_line.split()[1])

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_api(port: int, workers: int, env: dict[str, str]) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "chainworker", "api", "--port", str(port),
               "--workers", str(workers)]
    return subprocess.Popen(command, env=env)


async def wait_ready(url: str, process: subprocess.Popen[bytes]) -> None:
    async with httpx.AsyncClient() as client:
        for _ in range(200):
            if process.poll() is not None:
                raise SystemExit("the API exited during startup")
            try:
                if (await client.get(f"{url}/healthz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
    raise SystemExit("the API did not start")


async def drive(
    host: str, port: int, token: str, ticket_ids: list[uuid.UUID], clients: int,
    rate: float | None = None,
) -> tuple[float, list[float], Counter[int]]:
    """Mint every ticket once over `clients` connections.

    Closed loop (no rate): each client sends again as soon as it has an answer; latency
    from send. Open loop: requests fall due at `rate` per second and wait for a free
    connection if none is; latency from when each was due.
    """
    due: asyncio.Queue[tuple[uuid.UUID, float | None] | None] = asyncio.Queue()
    latencies: list[float] = []
    statuses: Counter[int] = Counter()

    async def one_client() -> None:
        client = RawClient(host, port, token)
        await client.open()
        try:
            while (item := await due.get()) is not None:
                ticket, scheduled = item
                sent = time.perf_counter()
                status = await client.post(f"/v1/tickets/{ticket}/mint", uuid.uuid4().hex)
                latencies.append(time.perf_counter() - (sent if scheduled is None else scheduled))
                statuses[status] += 1
        finally:
            client.close()

    async def schedule() -> None:
        for index, ticket in enumerate(ticket_ids):
            at = None if rate is None else started + index / rate
            if at is not None and (delay := at - time.perf_counter()) > 0:
                await asyncio.sleep(delay)
            due.put_nowait((ticket, at))
        for _ in range(clients):
            due.put_nowait(None)

    workers = [asyncio.create_task(one_client()) for _ in range(clients)]
    started = time.perf_counter()
    await schedule()
    await asyncio.gather(*workers)
    return time.perf_counter() - started, latencies, statuses


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU of these processes so far (0 where /proc is not there)."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def server_pids(root: int) -> list[int]:
    """The API process and its children (uvicorn's workers)."""
    pids = [root]
    for entry in os.listdir("/proc") if os.path.isdir("/proc") else []:
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    if int(stat.read().rsplit(")", 1)[1].split()[1]) == root:
                        pids.append(int(entry))
            except OSError:
                continue
    return pids


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--workers", type=int, default=1, help="API server processes")
    parser.add_argument("--warmup", type=int, default=500)
    parser.add_argument(
        "--rate", type=float, default=0, help="requests per second (open loop); 0: closed loop"
    )
    args = parser.parse_args()

    settings = load_settings()
    server, _origin = await services.find_postgres_server(settings)
    name = f"cw_bench_api_{uuid.uuid4().hex[:8]}"
    await services.ensure_database(server, name)
    redis = await services.resolve_redis(settings)
    queue = f"cwbench:{name}:queue"
    port = free_port()
    process: subprocess.Popen[bytes] | None = None
    try:
        await migrate(server.admin_dsn(name))
        pool = await asyncpg.create_pool(server.app_dsn(name), min_size=1, max_size=4)
        assert pool is not None
        owner = await asyncpg.connect(server.admin_dsn(name))  # the ticket service's data
        try:
            seeded = await seed_tenant(owner, tickets=args.requests + args.warmup, users=50)
        finally:
            await owner.close()
        token = (await issue_token(pool, seeded.tenant_id, "bench")).token
        await pool.close()

        env = {
            **os.environ,
            "DATABASE_URL": server.app_dsn(name),
            "REDIS_URL": redis.url,
            "QUEUE_NAME": queue,
            "LOG_LEVEL": "WARNING",
            "DB_POOL_MAX_SIZE": "20",
        }
        process = start_api(port, args.workers, env)
        await wait_ready(f"http://127.0.0.1:{port}", process)
        tickets = seeded.ticket_ids
        await drive("127.0.0.1", port, token, tickets[: args.warmup], args.clients)
        admin = await asyncpg.connect(server.admin_dsn(name))
        backends = [
            row["pid"]
            for row in await admin.fetch(
                "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
                name,
            )
        ]
        await admin.close()
        api_pids = server_pids(process.pid)
        api_cpu, db_cpu = cpu_seconds(api_pids), cpu_seconds(backends)
        seconds, latencies, statuses = await drive(
            "127.0.0.1", port, token, tickets[args.warmup :], args.clients,
            args.rate if args.rate > 0 else None,
        )
        api_cpu = cpu_seconds(api_pids) - api_cpu
        db_cpu = cpu_seconds(backends) - db_cpu
    finally:
        if process is not None:
            process.terminate()
            process.wait(timeout=15)
        client = Redis.from_url(redis.url)
        await drop_queue(client, queue)
        await client.aclose()
        admin = await asyncpg.connect(server.admin_dsn("postgres"))
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()

    result = {
        "requests": len(latencies),
        "clients": args.clients,
        "api_workers": args.workers,
        "rate": args.rate or None,
        "statuses": dict(statuses),
        "requests_per_second": round(len(latencies) / seconds, 1),
        "p50_ms": round(percentile(latencies, 0.50) * 1000, 2),
        "p90_ms": round(percentile(latencies, 0.90) * 1000, 2),
        "p99_ms": round(percentile(latencies, 0.99) * 1000, 2),
        "max_ms": round(max(latencies) * 1000, 2),
        "mean_ms": round(statistics.fmean(latencies) * 1000, 2),
        "api_cpu_ms_per_request": round(api_cpu / len(latencies) * 1000, 3),
        "postgres_cpu_ms_per_request": round(db_cpu / len(latencies) * 1000, 3),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
