"""The localnet node: slot clock, JSON-RPC over HTTP (raw ASGI), PubSub over WebSocket.

One asyncio event loop runs everything. Blocks execute in chunks with a yield to
the loop between them, so reads keep being answered while a busy block executes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import statistics
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson
import uvicorn
from websockets.asyncio.server import serve as ws_serve

from chainworker.localnet.errors import INTERNAL_ERROR, INVALID_REQUEST, PARSE_ERROR, RpcError
from chainworker.localnet.faults import Faults
from chainworker.localnet.ledger import Ledger
from chainworker.localnet.methods import Methods
from chainworker.localnet.pubsub import PubSub

log = logging.getLogger(__name__)

MAX_REQUEST_BODY = 1024 * 1024
MAX_BATCH = 1000
EXECUTE_CHUNK = 64
# Share of a slot a block may spend executing; the rest waits for the next block, as a
# leader's block limits would make it, so a burst does not stretch the slot.
BLOCK_TIME_BUDGET = 0.6

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


@dataclass
class NodeConfig:
    host: str = "127.0.0.1"
    port: int = 8899
    ws_port: int | None = None  # default: port + 1
    slot_ms: int = 400
    seed: int = 0
    confirm_depth: int = 1
    finalize_depth: int = 32


class Node:
    def __init__(self, config: NodeConfig, faults: dict[str, Any] | None = None) -> None:
        self.config = config
        self.ledger = Ledger(
            seed=config.seed,
            confirm_depth=config.confirm_depth,
            finalize_depth=config.finalize_depth,
        )
        self.faults = Faults(config.seed)
        ws_port = config.ws_port if config.ws_port is not None else config.port + 1
        self.rpc_url = f"http://{config.host}:{config.port}"
        self.ws_url = f"ws://{config.host}:{ws_port}"
        self.ws_port = ws_port
        self.methods = Methods(self.ledger, self.faults, rpc_url=self.rpc_url, ws_url=self.ws_url)
        self.pubsub = PubSub(self.ledger)
        self.slot_intervals: deque[float] = deque(maxlen=1000)
        self.block_durations: deque[float] = deque(maxlen=1000)
        if faults:
            self.apply_faults(faults)

    # --- faults --------------------------------------------------------------

    def apply_faults(self, changes: dict[str, Any]) -> dict[str, Any]:
        warp, fork = self.faults.merge(changes)
        if fork:
            self.ledger.fork()
        if warp:
            self.ledger.warp(warp)
        if fork or warp:
            self.pubsub.on_block()
        return self.faults.snapshot()

    def stats(self) -> dict[str, Any]:
        intervals = list(self.slot_intervals)
        durations = list(self.block_durations)
        return {
            "slot": self.ledger.slot,
            "block_height": self.ledger.height,
            "pending": len(self.ledger.pending),
            "transaction_count": self.ledger.transaction_count,
            "slot_ms": self.config.slot_ms,
            "slot_interval_ms_mean": statistics.fmean(intervals) * 1000 if intervals else None,
            "slot_interval_ms_max": max(intervals) * 1000 if intervals else None,
            "block_execution_ms_mean": statistics.fmean(durations) * 1000 if durations else None,
            "block_execution_ms_max": max(durations) * 1000 if durations else None,
            "slot_intervals_ms": [round(interval * 1000, 2) for interval in intervals],
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

    # --- HTTP --------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        path = scope["path"]
        method = scope["method"]
        if path.startswith("/admin/"):
            await self._admin(path, method, receive, send)
            return
        if method == "GET" and path == "/health":
            await _respond(send, 200, b"ok", b"text/plain")
            return
        if method != "POST":
            await _respond(
                send, 405, b"Used HTTP Method is not allowed. POST is required", b"text/plain"
            )
            return
        body = await _read_body(receive)
        if body is None:
            await _respond(
                send, 413, _error_body(None, RpcError(INVALID_REQUEST, "Request body too large"))
            )
            return
        fault = self.faults.http_fault()
        if fault is not None:
            kind, value = fault
            if kind == "error":
                status = int(value)
                text = b"Too Many Requests" if status == 429 else b"Service Unavailable"
                await _respond(send, status, text, b"text/plain")
                return
            await asyncio.sleep(value)
        await _respond(send, 200, self.handle_rpc(body))

    def handle_rpc(self, body: bytes) -> bytes:
        try:
            request = orjson.loads(body)
        except orjson.JSONDecodeError:
            return _error_body(None, RpcError(PARSE_ERROR, "Parse error"))
        if isinstance(request, list):
            if not request:
                return _error_body(None, RpcError(INVALID_REQUEST, "Invalid request"))
            if len(request) > MAX_BATCH:
                return _error_body(
                    None, RpcError(INVALID_REQUEST, f"Batch too large; max {MAX_BATCH} requests")
                )
            return orjson.dumps([self._handle_one(item) for item in request])
        return orjson.dumps(self._handle_one(request))

    def _handle_one(self, request: Any) -> dict[str, Any]:
        if not isinstance(request, dict):
            return _error(None, RpcError(INVALID_REQUEST, "Invalid request"))
        request_id = request.get("id")
        method = request.get("method")
        if request.get("jsonrpc") != "2.0" or not isinstance(method, str):
            return _error(request_id, RpcError(INVALID_REQUEST, "Invalid request"))
        try:
            result = self.methods.call(method, request.get("params"))
        except RpcError as error:
            return _error(request_id, error)
        except Exception:
            log.exception("method %s failed", method)
            return _error(request_id, RpcError(INTERNAL_ERROR, "Internal error"))
        return {"jsonrpc": "2.0", "result": result, "id": request_id}

    async def _admin(self, path: str, method: str, receive: Receive, send: Send) -> None:
        if path == "/admin/stats" and method == "GET":
            await _respond(send, 200, orjson.dumps(self.stats()))
            return
        if path != "/admin/faults":
            await _respond(send, 404, orjson.dumps({"error": "not found"}))
            return
        if method == "GET":
            await _respond(send, 200, orjson.dumps(self.faults.snapshot()))
        elif method == "DELETE":
            self.faults.clear()
            await _respond(send, 200, orjson.dumps(self.faults.snapshot()))
        elif method == "POST":
            body = await _read_body(receive)
            try:
                changes = orjson.loads(body or b"")
                snapshot = self.apply_faults(changes)
            except (orjson.JSONDecodeError, ValueError) as error:
                await _respond(send, 400, orjson.dumps({"error": str(error)}))
                return
            await _respond(send, 200, orjson.dumps(snapshot))
        else:
            await _respond(send, 405, orjson.dumps({"error": "use GET, POST or DELETE"}))

    # --- running -------------------------------------------------------------------

    async def serve(self, ready: Callable[[], None] | None = None) -> None:
        """Serve until cancelled."""
        config = uvicorn.Config(
            self,
            host=self.config.host,
            port=self.config.port,
            log_level="warning",
            access_log=False,
            lifespan="off",
            http="httptools",
            loop="none",
        )
        server = uvicorn.Server(config)
        clock = asyncio.create_task(self.run_clock())
        async with ws_serve(
            self.pubsub.handle, self.config.host, self.ws_port, max_size=MAX_REQUEST_BODY
        ):
            http = asyncio.create_task(server.serve())
            while not server.started and not http.done():  # noqa: ASYNC110 (no event to await)
                await asyncio.sleep(0.01)
            if ready is not None and server.started:
                ready()
            try:
                await http
            finally:
                clock.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await clock


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def _read_body(receive: Receive) -> bytes | None:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_REQUEST_BODY:
            return None
        chunks.append(chunk)
        if not message.get("more_body"):
            return b"".join(chunks)


async def _respond(
    send: Send, status: int, body: bytes, content_type: bytes = b"application/json"
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", content_type),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _error(request_id: Any, error: RpcError) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "error": error.to_json(), "id": request_id}


def _error_body(request_id: Any, error: RpcError) -> bytes:
    return orjson.dumps(_error(request_id, error))


def run(config: NodeConfig, faults: dict[str, Any] | None = None) -> None:
    """Run a node in this process until interrupted."""
    try:
        import uvloop

        runner: Callable[[Any], Any] = uvloop.run
    except ImportError:
        runner = asyncio.run
    node = Node(config, faults)
    started = time.time()

    def ready() -> None:
        print(
            f"localnet ready rpc={node.rpc_url} ws={node.ws_url} slot_ms={config.slot_ms} "
            f"seed={config.seed} startup={time.time() - started:.2f}s",
            flush=True,
        )

    with contextlib.suppress(KeyboardInterrupt):
        runner(node.serve(ready))
