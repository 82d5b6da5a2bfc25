"""One JSON-RPC HTTP endpoint over the shared ledger: its port, its view, its faults.

A node runs one or more endpoints, as a provider runs several RPC nodes behind
its URLs: each reads the same ledger (possibly lagging), and each can be made
to misbehave on its own. An endpoint that is down stops listening altogether;
its port refuses connections until it is brought back up.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import socket
from collections.abc import Awaitable, Callable, Iterator

import uvicorn

from chainworker.localnet.asgi import (
    Receive,
    Scope,
    Send,
    hold,
    lifespan,
    read_body,
    respond,
    respond_slowly,
)
from chainworker.localnet.errors import INVALID_REQUEST, RpcError
from chainworker.localnet.faults import EndpointFaults, LedgerFaults
from chainworker.localnet.garbage import garble
from chainworker.localnet.jsonrpc import dispatch, error_body, methods_of
from chainworker.localnet.ledger import Ledger
from chainworker.localnet.methods import HEALTH_CHECK_SLOT_DISTANCE, Methods
from chainworker.localnet.view import LedgerView

STOP_WAIT_SECONDS = 5.0
# After a listener is closed, when its port is bound again to keep it (see stop()).
PORT_KEEP_DELAY_SECONDS = 0.02
# How long an endpoint coming back up waits for its old listener to let go of the port.
REBIND_WAIT_SECONDS = 5.0


class _Listener(uvicorn.Server):
    """A uvicorn server that leaves signals to the node: several run in one process."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class Endpoint:
    def __init__(
        self,
        index: int,
        host: str,
        port: int,
        *,
        ledger: Ledger,
        ledger_faults: LedgerFaults,
        seed: int,
        ws_url: str,
        admin: Callable[[Endpoint, str, str, Receive, Send], Awaitable[None]],
    ) -> None:
        self.index = index
        self.host = host
        self.port = port
        self.faults = EndpointFaults(seed, index)
        self.view = LedgerView(ledger, lambda: self.faults.settings.lag_slots)
        self.methods = Methods(
            ledger, ledger_faults, view=self.view, rpc_url=self.rpc_url, ws_url=ws_url
        )
        self._admin = admin
        self._socket: socket.socket | None = None
        self._server: _Listener | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def rpc_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def up(self) -> bool:
        return self._server is not None

    # --- listening --------------------------------------------------------------

    def bind(self) -> None:
        """Take the port now (0: any free one), so the URL is known before serving.

        A bound socket that does not listen refuses connections, as a stopped node does.
        """
        if self._socket is not None:
            return
        family, kind, proto, _, address = socket.getaddrinfo(
            self.host, self.port, type=socket.SOCK_STREAM
        )[0]
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(address)
        except OSError:
            sock.close()
            raise
        self.port = int(sock.getsockname()[1])
        self.methods.rpc_url = self.rpc_url
        self._socket = sock

    async def start(self) -> None:
        if self._server is not None:
            return
        await self._bind_when_free()
        sock, self._socket = self._socket, None
        assert sock is not None
        config = uvicorn.Config(
            self,
            log_level="warning",
            access_log=False,
            lifespan="off",
            http="httptools",
            loop="none",
        )
        server = _Listener(config)
        task = asyncio.create_task(server.serve(sockets=[sock]))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        while not server.started and not task.done():  # noqa: ASYNC110 (no event to await)
            await asyncio.sleep(0.01)
        if task.done():
            task.result()  # the reason it did not start
        self._server = server

    async def _bind_when_free(self) -> None:
        """Bind, waiting while the port is still held by this endpoint's own listener
        closing (brought back up right after going down, on a busy machine)."""
        deadline = asyncio.get_running_loop().time() + REBIND_WAIT_SECONDS
        while True:
            try:
                self.bind()
                return
            except OSError as error:
                if error.errno != errno.EADDRINUSE or not self._tasks:
                    raise
                if asyncio.get_running_loop().time() > deadline:
                    raise
                await asyncio.sleep(0.02)

    def stop(self, *, keep_port: bool = False) -> None:
        """Stop listening and close every open connection; the port refuses from now on.

        `keep_port` (an endpoint taken down by a fault): the port is bound again, without
        listening, once the listener has closed, so it still refuses connections and no
        other process (another localnet of the same test run) can take it before the
        endpoint comes back up.
        """
        server, self._server = self._server, None
        if server is None:
            return
        if keep_port:
            asyncio.get_running_loop().call_later(PORT_KEEP_DELAY_SECONDS, self._keep_port)
        for listener in getattr(server, "servers", []):
            listener.close()
        for connection in list(server.server_state.connections):
            transport = getattr(connection, "transport", None)
            if transport is not None:
                transport.close()
        server.should_exit = True

    def _keep_port(self, tries: int = 0) -> None:
        """Bind the port again as soon as the closed listener lets go of it (on a busy
        machine that takes longer than the first delay): the sooner, the less chance that
        another process takes it meanwhile."""
        if self._server is not None or self._socket is not None:
            return  # up again, or already held
        try:
            self.bind()
        except OSError:
            if tries * PORT_KEEP_DELAY_SECONDS < REBIND_WAIT_SECONDS:
                asyncio.get_running_loop().call_later(
                    PORT_KEEP_DELAY_SECONDS, self._keep_port, tries + 1
                )

    async def wait_stopped(self) -> None:
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=STOP_WAIT_SECONDS)
        sock, self._socket = self._socket, None
        if sock is not None:
            sock.close()

    # --- HTTP ---------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        path = scope["path"]
        method = scope["method"]
        if path.startswith("/admin/"):
            await self._admin(self, path, method, receive, send)
            return
        if method == "GET" and path == "/health":
            behind = self.view.lag > HEALTH_CHECK_SLOT_DISTANCE
            await respond(send, 200, b"behind" if behind else b"ok", b"text/plain")
            return
        if method != "POST":
            await respond(
                send, 405, b"Used HTTP Method is not allowed. POST is required", b"text/plain"
            )
            return
        body = await read_body(receive)
        if body is None:
            await respond(
                send, 413, error_body(None, RpcError(INVALID_REQUEST, "Request body too large"))
            )
            return
        await self._answer(body, receive, send)

    async def _answer(self, body: bytes, receive: Receive, send: Send) -> None:
        faults = self.faults
        fault = faults.http_fault(lambda: methods_of(body))
        if fault is not None:
            kind, value = fault
            if kind == "error":
                status = int(value)
                text = b"Too Many Requests" if status == 429 else b"Service Unavailable"
                await respond(send, status, text, b"text/plain")
                return
            if not await hold(receive, value):
                return
        reply = dispatch(self.methods, body)
        garbage = faults.garbage_kind(reply.methods, reply.batch)
        if garbage is None:
            answer, content_type = reply.body(), b"application/json"
        else:
            affected = [faults.affects(method) for method in reply.methods]
            garbled = garble(garbage, reply.payload, affected, faults.rng)
            answer, content_type = garbled.body, garbled.content_type
        slow = faults.slowloris()
        if slow is None:
            await respond(send, 200, answer, content_type)
            return
        mode, byte_seconds = slow
        await respond_slowly(send, receive, answer, content_type, mode, byte_seconds)
