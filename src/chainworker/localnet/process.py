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


def free_ports(count: int, host: str = "127.0.0.1", taken: tuple[int, ...] = ()) -> list[int]:
    """`count` distinct free ports, none of them in `taken`."""
    ports: list[int] = []
    while len(ports) < count:
        port = free_port(host)
        if port not in ports and port not in taken:
            ports.append(port)
    return ports


def wait_healthy(
    rpc_url: str,
    timeout: float = STARTUP_TIMEOUT_SECONDS,
    process: subprocess.Popen[bytes] | None = None,
) -> None:
    """Wait until the endpoint answers `GET /health` (which no RPC fault touches)."""
    wait_any_healthy([rpc_url], timeout, process)


def wait_any_healthy(
    rpc_urls: list[str],
    timeout: float = STARTUP_TIMEOUT_SECONDS,
    process: subprocess.Popen[bytes] | None = None,
) -> None:
    """Wait until one of the endpoints answers. A node starts every endpoint that is up
    before it is ready, so one answering means all of them listen."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise LocalnetStartError(f"localnet exited with code {process.returncode}")
        for url in rpc_urls:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/health", timeout=1.0).status_code == 200:
                    return
        time.sleep(0.05)
    raise LocalnetStartError(
        f"localnet at {', '.join(rpc_urls)} did not become healthy in {timeout}s"
    )


@dataclass
class LocalnetProcess:
    """A running localnet: its URLs, and how to stop it.

    `rpc_url` is endpoint 0; `rpc_urls` lists every endpoint. Admin calls go to
    whichever endpoint's port accepts the connection, so they work while some
    endpoints are down.
    """

    rpc_url: str
    ws_url: str
    pid: int
    rpc_urls: list[str] = field(default_factory=list)
    _process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    _stopper: Any = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if not self.rpc_urls:
            self.rpc_urls = [self.rpc_url]

    @property
    def admin_url(self) -> str:
        return f"{self.rpc_url}/admin"

    @property
    def faults_url(self) -> str:
        return f"{self.rpc_url}/admin/faults"

    def get_faults(self, *, endpoint: int = 0) -> dict[str, Any]:
        """The ledger faults and endpoint `endpoint`'s, in one object."""
        return self._admin("GET", f"/admin/endpoints/{endpoint}/faults", avoid=endpoint)

    def set_faults(self, *, endpoint: int = 0, **faults: Any) -> dict[str, Any]:
        """Merge faults: ledger faults are shared, endpoint faults go to `endpoint`."""
        path = f"/admin/endpoints/{endpoint}/faults"
        return self._admin("POST", path, faults, avoid=endpoint)

    def clear_faults(self, endpoint: int | None = None) -> dict[str, Any]:
        """None: clear every fault (ledger and all endpoints); i: only endpoint i's own."""
        if endpoint is None:
            return self._admin("DELETE", "/admin/faults")
        return self._admin("DELETE", f"/admin/endpoints/{endpoint}/faults", avoid=endpoint)

    def stats(self) -> dict[str, Any]:
        """GET /admin/stats: slot timing, the leader settings, the scheduler's figures."""
        return self._admin("GET", "/admin/stats")

    def endpoints(self) -> list[dict[str, Any]]:
        """Every endpoint: index, rpc_url, up, faults."""
        described = self._admin("GET", "/admin/endpoints")
        listed: list[dict[str, Any]] = described["endpoints"]
        return listed

    def _admin(
        self, method: str, path: str, body: Any = None, avoid: int | None = None
    ) -> dict[str, Any]:
        # The endpoint addressed is asked last: it may be down, or about to go down.
        order = [url for index, url in enumerate(self.rpc_urls) if index != avoid]
        if avoid is not None and avoid < len(self.rpc_urls):
            order.append(self.rpc_urls[avoid])
        refused: httpx.ConnectError | None = None
        for url in order:
            try:
                response = httpx.request(method, f"{url}{path}", json=body, timeout=10.0)
            except httpx.ConnectError as error:
                refused = error
                continue
            response.raise_for_status()
            result: dict[str, Any] = response.json()
            return result
        assert refused is not None
        raise refused

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
    endpoints: int = 1,
    extra_args: list[str] | None = None,
) -> LocalnetProcess:
    """Spawn `python -m chainworker localnet` on free ports and wait until it is healthy.

    `endpoints` > 1 serves that many JSON-RPC endpoints over one ledger; with
    `port=0` every port is a free one, else they follow the PubSub port.
    """
    host = "127.0.0.1"
    if port == 0:
        port, default_ws = free_port_pair(host)
        ws_port = default_ws if ws_port is None else ws_port
        extra_ports = free_ports(endpoints - 1, host, (port, ws_port))
    else:
        ws_port = port + 1 if ws_port is None else ws_port
        extra_ports = [max(port, ws_port) + i for i in range(1, endpoints)]
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
        *(["--endpoint-ports", ",".join(map(str, extra_ports))] if extra_ports else []),
        *(extra_args or []),
    ]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, env=os.environ.copy())
    rpc_urls = [f"http://{host}:{p}" for p in (port, *extra_ports)]
    try:
        wait_any_healthy(rpc_urls, process=process)
    except BaseException:
        process.kill()
        process.wait()
        raise
    return LocalnetProcess(
        rpc_urls[0], f"ws://{host}:{ws_port}", process.pid, rpc_urls, _process=process
    )


def run_in_thread(
    *,
    port: int = 0,
    ws_port: int | None = None,
    slot_ms: int = 400,
    seed: int = 0,
    endpoints: int = 1,
    faults: dict[str, Any] | None = None,
) -> LocalnetProcess:
    """Run a localnet on a background thread of this process (for the demo)."""
    host = "127.0.0.1"
    extra_ports: tuple[int, ...] | None = None
    if port == 0:
        port, default_ws = free_port_pair(host)
        ws_port = default_ws if ws_port is None else ws_port
        extra_ports = tuple(free_ports(endpoints - 1, host, (port, ws_port)))
    config = NodeConfig(
        host=host,
        port=port,
        ws_port=ws_port,
        slot_ms=slot_ms,
        seed=seed,
        endpoints=endpoints,
        endpoint_ports=extra_ports,
    )
    node = Node(config, faults)
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

    return LocalnetProcess(node.rpc_url, node.ws_url, os.getpid(), node.rpc_urls, _stopper=stop)
