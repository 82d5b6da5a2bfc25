"""Where the worker's /metrics listens: loopback unless METRICS_HOST says otherwise."""

from __future__ import annotations

import ipaddress
import time
from pathlib import Path

import pytest

from chainworker.localnet.process import free_port
from tests.helpers import Stack, WorkerProcess

pytestmark = pytest.mark.timeout(120)
_LISTEN = "0A"  # TCP state in /proc/net/tcp{,6}


def listening_addresses(port: int) -> set[str]:
    """The local addresses with a TCP socket listening on `port`, as the kernel reports them."""
    found: set[str] = set()
    for table in ("tcp", "tcp6"):
        path = Path("/proc/net") / table
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, _, port_hex = local.partition(":")
            if state != _LISTEN or int(port_hex, 16) != port:
                continue
            raw = bytes.fromhex(address)
            # Each 32-bit word is in host (little-endian) order.
            packed = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
            found.add(str(ipaddress.ip_address(packed)))
    return found


def wait_listening(worker: WorkerProcess, port: int, seconds: float = 60) -> set[str]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if worker.process.poll() is not None:
            raise AssertionError(f"the worker exited:\n{worker.output()}")
        found = listening_addresses(port)
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"nothing listened on port {port} in {seconds}s:\n{worker.output()}")


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="needs Linux /proc/net/tcp")
@pytest.mark.parametrize(
    ("env", "expected"),
    [({}, {"127.0.0.1"}), ({"METRICS_HOST": "0.0.0.0"}, {"0.0.0.0"})],
    ids=["default", "METRICS_HOST=0.0.0.0"],
)
def test_worker_metrics_listen_where_the_setting_says(
    stack: Stack, env: dict[str, str], expected: set[str]
) -> None:
    port = free_port()
    worker = stack.worker(metrics_port=port, **env)
    try:
        assert wait_listening(worker, port) == expected
    finally:
        worker.stop()
