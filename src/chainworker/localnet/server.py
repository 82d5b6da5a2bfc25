"""The localnet node: slot clock, JSON-RPC endpoints over HTTP (raw ASGI), PubSub over WebSocket.

One asyncio event loop runs everything. Blocks execute in chunks with a yield to
the loop between them, so reads keep being answered while a busy block executes.
One ledger and one slot clock serve every endpoint; each endpoint has its own
port and faults (see `endpoint.py`), PubSub is served once, from the ledger.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import signal
import statistics
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from websockets.asyncio.server import serve as ws_serve

from chainworker.localnet import admin
from chainworker.localnet.asgi import MAX_REQUEST_BODY
from chainworker.localnet.endpoint import Endpoint
from chainworker.localnet.faults import LedgerFaults, split, validate
from chainworker.localnet.ledger import Ledger
from chainworker.localnet.pubsub import PubSub
from chainworker.localnet.scheduler import LeaderSettings

log = logging.getLogger(__name__)

EXECUTE_CHUNK = 64
# Share of a slot a block may spend executing; the rest waits for the next block, so a
# burst does not stretch the slot (the block limits of scheduler.py apply before this).
BLOCK_TIME_BUDGET = 0.6
STATS_BLOCKS = 100  # per-block figures /admin/stats reports


@dataclass
class NodeConfig:
    host: str = "127.0.0.1"
    port: int = 8899
    ws_port: int | None = None  # default: port + 1
    slot_ms: int = 400
    seed: int = 0
    confirm_depth: int = 1
    finalize_depth: int = 32
    endpoints: int = 1
    # Ports of endpoints 1, 2, ... (0: any free port); default: the ports after PubSub's.
    endpoint_ports: tuple[int, ...] | None = None

    def rpc_ports(self) -> list[int]:
        if self.endpoint_ports is not None:
            return [self.port, *self.endpoint_ports]
        if self.port == 0:
            return [0] * self.endpoints
        ws_port = self.ws_port if self.ws_port is not None else self.port + 1
        base = max(self.port, ws_port)
        return [self.port] + [base + i for i in range(1, self.endpoints)]


class Node:
    def __init__(
        self,
        config: NodeConfig,
        faults: dict[str, Any] | None = None,
        fault_endpoints: Sequence[int] | None = None,
    ) -> None:
        """`faults` apply at start; their endpoint faults to `fault_endpoints` (None: all).

        Leader settings among them are the node's own: clearing faults comes back to them.
        """
        self.config = config
        self.leader = LeaderSettings()
        self.ledger = Ledger(
            seed=config.seed,
            confirm_depth=config.confirm_depth,
            finalize_depth=config.finalize_depth,
            leader=self.leader,
            slot_seconds=config.slot_ms / 1000,
        )
        self.faults = LedgerFaults(config.seed)
        ws_port = config.ws_port if config.ws_port is not None else config.port + 1
        self.ws_url = f"ws://{config.host}:{ws_port}"
        self.ws_port = ws_port
        handler = functools.partial(admin.handle, self)
        self.endpoints = [
            Endpoint(
                index,
                config.host,
                port,
                ledger=self.ledger,
                ledger_faults=self.faults,
                seed=config.seed,
                ws_url=self.ws_url,
                admin=handler,
            )
            for index, port in enumerate(config.rpc_ports())
        ]
        self.pubsub = PubSub(self.ledger)
        self.slot_intervals: deque[float] = deque(maxlen=1000)
        self.block_durations: deque[float] = deque(maxlen=1000)
        if faults:
            self.apply_faults(faults, fault_endpoints)
        self._leader_at_start = asdict(self.leader)

    @property
    def rpc_url(self) -> str:
        return self.endpoints[0].rpc_url

    @property
    def rpc_urls(self) -> list[str]:
        return [endpoint.rpc_url for endpoint in self.endpoints]

    # --- faults --------------------------------------------------------------

    def faults_of(self, endpoint: Endpoint) -> dict[str, Any]:
        """The flat view /admin/faults answers: ledger faults and the endpoint's own."""
        return {**self.faults.snapshot(), **asdict(self.leader), **endpoint.faults.snapshot()}

    def describe(self) -> dict[str, Any]:
        return {
            "ledger": self.faults.snapshot(),
            "leader": asdict(self.leader),
            "endpoints": [
                {
                    "index": endpoint.index,
                    "rpc_url": endpoint.rpc_url,
                    "up": endpoint.up,
                    "faults": endpoint.faults.snapshot(),
                }
                for endpoint in self.endpoints
            ],
        }

    def apply_faults(self, changes: Any, targets: Sequence[int] | None = None) -> None:
        """Validate, then merge: ledger faults for all, endpoint faults for `targets` (None: all).

        Raises ValueError naming the field, before anything changes. Listeners follow
        `down` once `sync_listeners` runs.
        """
        ledger_changes, endpoint_changes, leader_changes = split(validate(changes))
        indexes = range(len(self.endpoints)) if targets is None else targets
        chosen = [self.endpoints[index] for index in indexes]
        if "down" in endpoint_changes:
            down_after = [
                endpoint_changes["down"] if endpoint in chosen else endpoint.faults.settings.down
                for endpoint in self.endpoints
            ]
            if all(down_after):
                raise ValueError("down: at least one endpoint must stay up to serve /admin")
        warp, fork = self.faults.merge(ledger_changes)
        for name, value in leader_changes.items():
            setattr(self.leader, name, value)  # in place: the ledger reads the same object
        for endpoint in chosen:
            endpoint.faults.merge(endpoint_changes)
        self._retain_history()
        if fork:
            self.ledger.fork()
        if warp:
            self.ledger.warp(warp)
        if fork or warp:
            self.pubsub.on_block()

    def clear_faults(self, targets: Sequence[int] | None = None) -> None:
        """Clear the faults of `targets`' endpoints; None clears every fault, the ledger's too."""
        if targets is None:
            self.faults.clear()
            for name, value in self._leader_at_start.items():
                setattr(self.leader, name, value)
        for index in range(len(self.endpoints)) if targets is None else targets:
            self.endpoints[index].faults.clear()
        self._retain_history()

    def _retain_history(self) -> None:
        # A lagging endpoint reads account versions from `lag` slots further back.
        lag = max(endpoint.faults.settings.lag_slots for endpoint in self.endpoints)
        self.ledger.retain_slots = self.ledger.finalize_depth + lag

    async def sync_listeners(self, keep: Endpoint | None = None) -> None:
        """Start or stop each endpoint's listener to match its `down` fault (but `keep`'s)."""
        stopped = False
        for endpoint in self.endpoints:
            down = endpoint.faults.settings.down
            if down and endpoint.up and endpoint is not keep:
                endpoint.stop(keep_port=True)
                stopped = True
            elif not down and not endpoint.up:
                await endpoint.start()
        if stopped:
            await asyncio.sleep(0.01)  # let the loop close the listening sockets

    def stats(self) -> dict[str, Any]:
        intervals = list(self.slot_intervals)
        durations = list(self.block_durations)
        return {
            "slot": self.ledger.slot,
            "block_height": self.ledger.height,
            "pending": len(self.ledger.scheduler),
            "transaction_count": self.ledger.transaction_count,
            "slot_ms": self.config.slot_ms,
            "slot_interval_ms_mean": statistics.fmean(intervals) * 1000 if intervals else None,
            "slot_interval_ms_max": max(intervals) * 1000 if intervals else None,
            "block_execution_ms_mean": statistics.fmean(durations) * 1000 if durations else None,
            "block_execution_ms_max": max(durations) * 1000 if durations else None,
            "slot_intervals_ms": [round(interval * 1000, 2) for interval in intervals],
            "leader": asdict(self.leader),
            "scheduler": self.ledger.scheduler.stats(STATS_BLOCKS),
        }

    # --- slot clock ------------------------------------------------------------

    async def run_clock(self) -> None:
        loop = asyncio.get_running_loop()
        slot_seconds = self.config.slot_ms / 1000
        deadline = loop.time()
        last_start: float | None = None
        while True:
            deadline += slot_seconds
            await asyncio.sleep(max(0.0, deadline - loop.time()))
            if self.faults.settings.clock_frozen:
                last_start = None
                continue
            started = loop.time()
            if last_start is not None:
                self.slot_intervals.append(started - last_start)
            last_start = started
            try:
                budget_end = started + slot_seconds * BLOCK_TIME_BUDGET
                self.ledger.start_block()
                while self.ledger.execute_some(EXECUTE_CHUNK):
                    if loop.time() > budget_end:
                        self.ledger.defer_remaining()
                        break
                    await asyncio.sleep(0)  # let reads in between chunks
                self.ledger.finish_block()
                self.pubsub.on_block()
            except Exception:
                log.exception("block production failed")
            self.block_durations.append(loop.time() - started)
            if loop.time() > deadline + slot_seconds:
                deadline = loop.time()  # fell behind: keep the pace, do not burst

    # --- running -------------------------------------------------------------------

    async def serve(self, ready: Callable[[], None] | None = None) -> None:
        """Serve until cancelled."""
        for endpoint in self.endpoints:
            endpoint.bind()  # every port taken before any is served, so none is lost
        clock = asyncio.create_task(self.run_clock())
        try:
            async with ws_serve(
                self.pubsub.handle, self.config.host, self.ws_port, max_size=MAX_REQUEST_BODY
            ):
                await self.sync_listeners()
                if ready is not None:
                    ready()
                await asyncio.Event().wait()
        finally:
            for endpoint in self.endpoints:
                endpoint.stop()
            for endpoint in self.endpoints:
                await endpoint.wait_stopped()
            clock.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await clock


async def _serve_until_signalled(node: Node, ready: Callable[[], None]) -> None:
    serving = asyncio.ensure_future(node.serve(ready))
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, serving.cancel)
    with contextlib.suppress(asyncio.CancelledError):
        await serving


def run(
    config: NodeConfig,
    faults: dict[str, Any] | None = None,
    fault_endpoints: Sequence[int] | None = None,
) -> None:
    """Run a node in this process until interrupted (SIGINT or SIGTERM)."""
    try:
        import uvloop

        runner: Callable[[Any], Any] = uvloop.run
    except ImportError:
        runner = asyncio.run
    node = Node(config, faults, fault_endpoints)
    started = time.time()

    def ready() -> None:
        print(
            f"localnet ready rpc={node.rpc_url} endpoints={','.join(node.rpc_urls)} "
            f"ws={node.ws_url} slot_ms={config.slot_ms} seed={config.seed} "
            f"startup={time.time() - started:.2f}s",
            flush=True,
        )

    runner(_serve_until_signalled(node, ready))
