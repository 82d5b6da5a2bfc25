"""Running chainworker's own processes from tests: the CLI and workers, as an operator would."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.conftest import TestDatabase, own_queue_name


@dataclass
class Stack:
    """The environment one test's processes share: its database, queue, chain and keys."""

    db: TestDatabase
    redis_url: str
    rpc_urls: str
    state_dir: Path
    queue: str = field(default_factory=lambda: own_queue_name("worker"))
    extra: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)

    def env(self, **overrides: str) -> dict[str, str]:
        env = {
            **os.environ,
            "DATABASE_URL": self.db.app_dsn,
            "DATABASE_ADMIN_URL": self.db.admin_dsn,
            "REDIS_URL": self.redis_url,
            "SOLANA_RPC_URLS": self.rpc_urls,
            "STATE_DIR": str(self.state_dir),
            "QUEUE_NAME": self.queue,
            "METRICS_PORT": "0",
            "LOG_FORMAT": "json",
            "CONFIRM_INTERVAL_SECONDS": "0.2",
            "REBROADCAST_INTERVAL_SECONDS": "0.5",
            "SWEEPER_INTERVAL_SECONDS": "0.5",
            "SWEEPER_GRACE_SECONDS": "2",
            "BLOCKHASH_CACHE_SECONDS": "0.5",
            **self.extra,
        }
        env.update(overrides)
        return env

    def cli(self, *args: str, stdin: str | None = None, check: bool = True) -> str:
        result = subprocess.run(
            [sys.executable, "-m", "chainworker", *args],
            env=self.env(), input=stdin, capture_output=True, text=True, timeout=120,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"chainworker {' '.join(args)} failed: {result.stderr}")
        return result.stdout

    def cli_json(self, *args: str, stdin: str | None = None) -> Any:
        return json.loads(self.cli(*args, "--json", stdin=stdin))

    def worker(self, metrics_port: int = 0, **env: str) -> WorkerProcess:
        log = self.state_dir / f"worker-{uuid.uuid4().hex[:6]}.log"
        handle = log.open("wb")
        process = subprocess.Popen(
            [sys.executable, "-m", "chainworker", "worker", "--metrics-port", str(metrics_port)],
            env=self.env(**env), stdout=handle, stderr=subprocess.STDOUT,
        )
        return WorkerProcess(process, log)


@dataclass
class WorkerProcess:
    process: subprocess.Popen[bytes]
    log: Path

    def kill(self) -> None:
        """SIGKILL: no cleanup at all, as a crash."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()

    def output(self) -> str:
        return self.log.read_text(errors="replace")


async def wait_for(
    check: Callable[[], Awaitable[bool]], seconds: float, what: str, interval: float = 0.2
) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(interval)
    raise AssertionError(f"timed out after {seconds}s waiting for {what}")
