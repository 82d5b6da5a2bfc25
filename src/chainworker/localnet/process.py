"""Start a localnet as a subprocess (tests, tools) or in a background thread (demo)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import httpx

from chainworker.localnet.server import Node, NodeConfig

STARTUP_TIMEOUT_SECONDS = 30.0


class LocalnetStartError(RuntimeError):
    """The localnet did not answer getHealth in time."""


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def free_port_pair(host: str = "127.0.0.1") -> tuple[int, int]:
    """Two free ports; the second is the first + 1 when possible, as a validator uses."""
    for _ in range(50):
        port = free_port(host)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind((host, port + 1))
            except OSError:
                continue
        return port, port + 1
    return free_port(host), free_port(host)


def wait_healthy(
    rpc_url: str,
    timeout: float = STARTUP_TIMEOUT_SECONDS,
    process: subprocess.Popen[bytes] | None = None,
) -> None:
    deadline = time.monotonic() + timeout
    body = {"jsonrpc": "2.0", "id": 1, "method": "getHealth"}
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise LocalnetStartError(f"localnet exited with code {process.returncode}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.post(rpc_url, json=body, timeout=1.0).json().get("result") == "ok":
                return
        time.sleep(0.05)
    raise LocalnetStartError(f"localnet at {rpc_url} did not become healthy in {timeout}s")


@dataclass
class LocalnetProcess:
    """A running localnet: its URLs, and how to stop it."""

    rpc_url: str
    ws_url: str
    pid: int
    _process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    _stopper: Any = field(default=None, repr=False)

    @property
    def admin_url(self) -> str:
        return f"{self.rpc_url}/admin"

    @property
    def faults_url(self) -> str:
        return f"{self.rpc_url}/admin/faults"

    def set_faults(self, **faults: Any) -> dict[str, Any]:
        response = httpx.post(self.faults_url, json=faults, timeout=10.0)
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result

    def clear_faults(self) -> dict[str, Any]:
        response = httpx.delete(self.faults_url, timeout=10.0)
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        if self._stopper is not None:
            self._stopper()
            self._stopper = None

    def __enter__(self) -> LocalnetProcess:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def start_localnet(
    *,
    port: int = 0,
    ws_port: int | None = None,
    slot_ms: int = 400,
    seed: int = 0,
    extra_args: list[str] | None = None,
) -> LocalnetProcess:
    """Spawn `python -m chainworker localnet` on free ports and wait until it is healthy."""
    host = "127.0.0.1"
    if port == 0:
        port, default_ws = free_port_pair(host)
        ws_port = default_ws if ws_port is None else ws_port
    elif ws_port is None:
        ws_port = port + 1
    command = [
        sys.executable,
        "-m",
        "chainworker",
        "localnet",
        "--host",
        host,
        "--port",
        str(port),
        "--ws-port",
        str(ws_port),
        "--slot-ms",
        str(slot_ms),
        "--seed",
        str(seed),
        *(extra_args or []),
    ]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, env=os.environ.copy())
    rpc_url = f"http://{host}:{port}"
    try:
        wait_healthy(rpc_url, process=process)
    except BaseException:
        process.kill()
        process.wait()
        raise
    return LocalnetProcess(rpc_url, f"ws://{host}:{ws_port}", process.pid, _process=process)


def run_in_thread(
    *,
    port: int = 0,
    ws_port: int | None = None,
    slot_ms: int = 400,
    seed: int = 0,
    faults: dict[str, Any] | None = None,
) -> LocalnetProcess:
    """Run a localnet on a background thread of this process (for the demo)."""
    host = "127.0.0.1"
    if port == 0:
        port, default_ws = free_port_pair(host)
        ws_port = default_ws if ws_port is None else ws_port
    node = Node(
        NodeConfig(host=host, port=port, ws_port=ws_port, slot_ms=slot_ms, seed=seed), faults
    )
    loop = asyncio.new_event_loop()
    task_holder: dict[str, asyncio.Task[None]] = {}

    def runner() -> None:
        asyncio.set_event_loop(loop)
        task_holder["task"] = loop.create_task(node.serve())
        with contextlib.suppress(asyncio.CancelledError):
            loop.run_until_complete(task_holder["task"])
        loop.close()

    thread = threading.Thread(target=runner, name="localnet", daemon=True)
    thread.start()
    wait_healthy(node.rpc_url)

    def stop() -> None:
        task = task_holder.get("task")
        if task is not None:
            loop.call_soon_threadsafe(task.cancel)
        thread.join(timeout=10)

    return LocalnetProcess(node.rpc_url, node.ws_url, os.getpid(), _stopper=stop)
