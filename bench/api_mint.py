"""API mint throughput: POST /v1/tickets/{id}/mint with 50 concurrent clients, idempotency on.

Run: python bench/api_mint.py [--requests 5000] [--clients 50] [--workers 1]

Creates a scratch database on the PostgreSQL chainworker finds (migrated, one tenant
with one sold ticket per request, a token), starts `chainworker api` as a subprocess,
and sends every mint once with its own Idempotency-Key over HTTP/1.1 keep-alive
connections (a minimal client, so the client's CPU does not hide the server's).
Each request does the full path: token check, idempotency acquire, ticket check,
recorded request + stored response in one transaction, Arq enqueue. Prints
requests/s and p50/p99 latency; drops the database and the queue afterwards.
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
    host: str, port: int, token: str, ticket_ids: list[uuid.UUID], clients: int
) -> tuple[float, list[float], Counter[int]]:
    pending = list(reversed(ticket_ids))
    latencies: list[float] = []
    statuses: Counter[int] = Counter()

    async def one_client() -> None:
        client = RawClient(host, port, token)
        await client.open()
        try:
            while pending:
                ticket = pending.pop()
                started = time.perf_counter()
                status = await client.post(f"/v1/tickets/{ticket}/mint", uuid.uuid4().hex)
                latencies.append(time.perf_counter() - started)
                statuses[status] += 1
        finally:
            client.close()

    started = time.perf_counter()
    await asyncio.gather(*(one_client() for _ in range(clients)))
    return time.perf_counter() - started, latencies, statuses


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--workers", type=int, default=1, help="API server processes")
    parser.add_argument("--warmup", type=int, default=500)
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
        seeded = await seed_tenant(pool, tickets=args.requests + args.warmup, users=50)
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
        seconds, latencies, statuses = await drive(
            "127.0.0.1", port, token, tickets[args.warmup :], args.clients
        )
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
        "statuses": dict(statuses),
        "requests_per_second": round(len(latencies) / seconds, 1),
        "p50_ms": round(percentile(latencies, 0.50) * 1000, 2),
        "p99_ms": round(percentile(latencies, 0.99) * 1000, 2),
        "mean_ms": round(statistics.fmean(latencies) * 1000, 2),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
