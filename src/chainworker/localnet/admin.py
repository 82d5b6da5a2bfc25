"""The admin interface, outside the Solana API, on every endpoint's port.

- ``GET /admin/stats``: slot, pending count, slot timing, the leader settings and
  the scheduler's figures (``scheduler``: ``pending``, ``totals`` since start and
  ``blocks``, the last 100 blocks: ``slot``, ``units``, ``transactions``,
  ``competing``, ``deferred_for_limits``, ``deferred_for_time``,
  ``dropped_expired``, ``dropped_buffer_full``; see scheduler.BlockStats).
- ``GET|POST|DELETE /admin/faults``: the ledger faults plus the faults of the
  endpoint whose port was asked; POST merges, DELETE clears every fault of the
  node (ledger and all endpoints).
- ``GET /admin/endpoints``: every endpoint, its URL, whether it is up, its faults.
- ``GET|POST|DELETE /admin/endpoints/{i}/faults``: the same view and merge for
  endpoint i, from any port (so a down endpoint can be brought back); DELETE
  clears only that endpoint's own faults.

A bad value is answered 400 with an error naming the field, and changes nothing.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import orjson

from chainworker.localnet.asgi import Receive, Send, read_body, respond_json

if TYPE_CHECKING:
    from chainworker.localnet.endpoint import Endpoint
    from chainworker.localnet.server import Node

_ENDPOINT_FAULTS = re.compile(r"/admin/endpoints/(\d+)/faults")


async def handle(
    node: Node, endpoint: Endpoint, path: str, method: str, receive: Receive, send: Send
) -> None:
    if path == "/admin/stats" and method == "GET":
        await respond_json(send, 200, node.stats())
        return
    if path == "/admin/endpoints" and method == "GET":
        await respond_json(send, 200, node.describe())
        return
    if path == "/admin/faults":
        await _faults(node, endpoint, endpoint, method, receive, send, clear_all=True)
        return
    match = _ENDPOINT_FAULTS.fullmatch(path)
    if match is not None:
        index = int(match.group(1))
        if index >= len(node.endpoints):
            await respond_json(send, 404, {"error": f"no endpoint {index}"})
            return
        target = node.endpoints[index]
        await _faults(node, endpoint, target, method, receive, send, clear_all=False)
        return
    await respond_json(send, 404, {"error": "not found"})


async def _faults(
    node: Node,
    asked: Endpoint,
    target: Endpoint,
    method: str,
    receive: Receive,
    send: Send,
    *,
    clear_all: bool,
) -> None:
    if method == "GET":
        await respond_json(send, 200, node.faults_of(target))
        return
    if method == "DELETE":
        node.clear_faults(None if clear_all else [target.index])
    elif method == "POST":
        body = await read_body(receive)
        try:
            node.apply_faults(orjson.loads(body or b""), [target.index])
        except (orjson.JSONDecodeError, ValueError) as error:
            await respond_json(send, 400, {"error": str(error)})
            return
    else:
        await respond_json(send, 405, {"error": "use GET, POST or DELETE"})
        return
    # An endpoint cannot stop its own listener before its answer is out.
    await node.sync_listeners(keep=asked)
    await respond_json(send, 200, node.faults_of(target))
    if asked.faults.settings.down:
        asked.stop(keep_port=True)
