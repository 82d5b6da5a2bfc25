"""The campaign's stack: scratch PostgreSQL and Valkey, the localnet, the fleet, the tenants.

Nothing here touches the machine's own servers: the campaign restarts and flushes these.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from uuid import UUID

import asyncpg
import httpx

from chainworker import services
from chainworker.api.tokens import issue_token
from chainworker.db import seed as seed_data
from chainworker.db.migrate import migrate
from chainworker.localnet.process import LocalnetProcess, start_localnet


@dataclass(frozen=True)
class Config:
    tickets: int = 5000
    tenants: int = 3
    workers: int = 3
    seed: int = 1
    slot_ms: int = 100
    # Every fault window is this fraction of its full length (the bounded slice is short).
    scale: float = 1.0
    kills: int = 12
    settle_seconds: float = 600.0
    report: Path | None = None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Valkey:
    """A scratch embedded Valkey on a fixed port, so a restart keeps the URL every process uses."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        services.start_embedded_valkey(self.directory, port=self.port)

    def stop(self) -> None:
        services.stop_embedded_valkey(self.directory)


class Postgres:
    """A scratch embedded PostgreSQL in the campaign's directory."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.server: services.PgServer | None = None

    def start(self) -> services.PgServer:
        self.server = services.start_embedded_postgres(self.directory)
        return self.server

    def restart(self) -> None:
        services.stop_embedded_postgres(self.directory)
        self.start()

    def stop(self) -> None:
        services.stop_embedded_postgres(self.directory)


class Fleet:
    """The worker processes and the API, each restarted when it dies (as a supervisor does)."""

    def __init__(self, env: dict[str, str], workers: int, logs: Path) -> None:
        self.env = env
        self.logs = logs
        self.workers: list[subprocess.Popen[bytes] | None] = [None] * workers
        self.api: subprocess.Popen[bytes] | None = None
        self.api_port = free_port()
        self.kills = 0
        self.restarts = Counter[str]()
        self._stopping = False

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def _spawn(self, name: str, args: list[str]) -> subprocess.Popen[bytes]:
        log = (self.logs / f"{name}.log").open("ab")
        return subprocess.Popen(
            [sys.executable, "-m", "chainworker", *args], env=self.env, stdout=log,
            stderr=subprocess.STDOUT,
        )

    def start(self) -> None:
        for i in range(len(self.workers)):
            self.workers[i] = self._spawn(f"worker-{i}", ["worker", "--metrics-port", "0"])
        self.api = self._spawn("api", ["api", "--port", str(self.api_port)])

    async def supervise(self) -> None:
        while not self._stopping:
            for i, process in enumerate(self.workers):
                if process is not None and process.poll() is not None:
                    self.restarts[f"worker-{i} exited {process.returncode}"] += 1
                    self.workers[i] = self._spawn(f"worker-{i}", ["worker", "--metrics-port", "0"])
            if self.api is not None and self.api.poll() is not None:
                self.restarts[f"api exited {self.api.returncode}"] += 1
                self.api = self._spawn("api", ["api", "--port", str(self.api_port)])
            await asyncio.sleep(0.5)

    async def kill_one(self, rng: random.Random) -> None:
        i = rng.randrange(len(self.workers))
        process = self.workers[i]
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
        self.kills += 1
        self.workers[i] = None  # not the supervisor's: started again here, after a pause
        await asyncio.sleep(rng.uniform(1, 3))
        self.workers[i] = self._spawn(f"worker-{i}", ["worker", "--metrics-port", "0"])

    def stop(self) -> None:
        self._stopping = True
        for process in [*self.workers, self.api]:
            if process is not None and process.poll() is None:
                process.terminate()
        for process in [*self.workers, self.api]:
            if process is not None:
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    process.kill()


@dataclass
class Tenant:
    id: UUID
    users: list[UUID]
    tickets: list[UUID]
    token: str
    holder: dict[UUID, UUID]  # ticket -> its seeded user


@dataclass
class Ask:
    """One request asked of chainworker, through one way in."""

    channel: str  # api, outbox, cli
    operation: str
    tenant: UUID
    ticket: UUID
    transfer: UUID | None = None
    reason: str | None = None
    request_id: UUID | None = None  # known at once through the API and the CLI


# The ticket service's own connections: few, as a real service's pool would be, so the
# campaign never starves the workers and the API of the database's connection slots.
OWNER_CONNECTIONS = 4


@dataclass
class Campaign:
    config: Config
    env: dict[str, str]
    admin_dsn: str
    app_dsn: str
    database: str
    localnet: LocalnetProcess
    valkey: Valkey
    postgres: Postgres
    fleet: Fleet
    tenants: list[Tenant]
    state_dir: Path
    asks: list[Ask] = field(default_factory=list)
    # (fault kind, when it was scheduled, seconds from its end to full recovery)
    probes: list[tuple[str, float, float]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    oldest_live_seen: float = 0.0
    figures: dict[str, object] = field(default_factory=dict)  # what the faults did
    timeline: list[str] = field(default_factory=list)
    started: float = 0.0
    owner_slots: asyncio.Semaphore = field(
        default_factory=lambda: asyncio.Semaphore(OWNER_CONNECTIONS))

    def note(self, text: str) -> None:
        line = f"{time.monotonic() - self.started:7.1f} s  {text}"
        self.timeline.append(line)
        print(line, flush=True)




async def setup(config: Config, workdir: Path) -> Campaign:
    postgres = Postgres(workdir / "postgres")
    server = await asyncio.to_thread(postgres.start)
    database = "chainworker"
    await services.ensure_database(server, database)
    admin_dsn, app_dsn = server.admin_dsn(database), server.app_dsn(database)
    await migrate(admin_dsn)
    valkey = Valkey(workdir / "valkey")
    valkey.start()
    localnet = start_localnet(slot_ms=config.slot_ms, seed=config.seed, endpoints=3)
    state_dir = workdir / "state"
    logs = workdir / "logs"
    logs.mkdir(parents=True)
    env = {
        **os.environ,
        "DATABASE_URL": app_dsn, "DATABASE_ADMIN_URL": admin_dsn, "REDIS_URL": valkey.url,
        "SOLANA_RPC_URLS": ",".join(localnet.rpc_urls), "STATE_DIR": str(state_dir),
        "QUEUE_NAME": "chainworker:chaos", "METRICS_PORT": "0", "LOG_FORMAT": "json",
        "LOG_LEVEL": "INFO", "CONFIRM_INTERVAL_SECONDS": "0.3",
        "SWEEPER_INTERVAL_SECONDS": "2", "SWEEPER_GRACE_SECONDS": "10",
        "OUTBOX_POLL_INTERVAL_SECONDS": "0.3", "RPC_TIMEOUT_SECONDS": "3",
        "JOB_TIMEOUT_SECONDS": "20",
    }
    tenants = []
    owner = await asyncpg.connect(admin_dsn)
    pool = await asyncpg.create_pool(app_dsn, min_size=1, max_size=2)
    assert pool is not None
    try:
        per_tenant = max(4, config.tickets // config.tenants)
        for i in range(config.tenants):
            seeded = await seed_data.seed_tenant(
                owner, tickets=per_tenant, users=max(4, per_tenant // 25),
                tenant_name=f"Chaos {i}",
            )
            token = (await issue_token(pool, seeded.tenant_id, "chaos")).token
            holders = {row["id"]: row["user_id"] for row in await owner.fetch(
                "SELECT id, user_id FROM tickets WHERE tenant_id = $1", seeded.tenant_id)}
            tenants.append(Tenant(seeded.tenant_id, seeded.user_ids, seeded.ticket_ids, token,
                                  holders))
    finally:
        await pool.close()
        await owner.close()
    fleet = Fleet(env, config.workers, logs)
    fleet.start()
    async with httpx.AsyncClient() as http:
        for _ in range(300):
            with contextlib.suppress(httpx.HTTPError):
                if (await http.get(f"{fleet.api_url}/healthz")).status_code == 200:
                    break
            await asyncio.sleep(0.1)
    return Campaign(config, env, admin_dsn, app_dsn, database, localnet, valkey, postgres,
                    fleet, tenants, state_dir)
