"""Solana PubSub over WebSocket: subscriptions notified as blocks reach each commitment."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
from dataclasses import dataclass, field
from typing import Any

from solders.pubkey import Pubkey
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from chainworker.localnet import params as p
from chainworker.localnet.encoding import encode_account
from chainworker.localnet.errors import INVALID_REQUEST, METHOD_NOT_FOUND, RpcError, invalid_params
from chainworker.localnet.ledger import Commitment, Ledger
from chainworker.localnet.messages import writable_keys
from chainworker.localnet.methods import SOLANA_CORE_VERSION

log = logging.getLogger(__name__)

_KINDS = {
    "signatureSubscribe": "signature",
    "accountSubscribe": "account",
    "programSubscribe": "program",
    "logsSubscribe": "logs",
    "slotSubscribe": "slot",
    "rootSubscribe": "root",
}
_UNSUBSCRIBE = {kind.replace("Subscribe", "Unsubscribe"): name for kind, name in _KINDS.items()}


@dataclass
class Subscription:
    id: int
    kind: str
    connection: Connection
    commitment: Commitment = "finalized"
    target: Any = None
    encoding: str = "base64"
    last_slot: int = 0
    last_value: Any = None
    filters: list[Any] = field(default_factory=list)


class Connection:
    def __init__(self, websocket: ServerConnection) -> None:
        self.websocket = websocket
        self.outbox: asyncio.Queue[str] = asyncio.Queue()
        self.subscriptions: dict[int, Subscription] = {}

    def send(self, message: dict[str, Any]) -> None:
        self.outbox.put_nowait(json.dumps(message))

    async def writer(self) -> None:
        while True:
            text = await self.outbox.get()
            await self.websocket.send(text)


class PubSub:
    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self._ids = itertools.count(1)
        self.subscriptions: dict[int, Subscription] = {}

    # --- connection handling ---------------------------------------------------

    async def handle(self, websocket: ServerConnection) -> None:
        connection = Connection(websocket)
        writer = asyncio.create_task(connection.writer())
        try:
            async for message in websocket:
                for reply in self._handle_text(connection, message):
                    connection.send(reply)
                # A signature that already landed is notified right away, after the reply
                # that announced the subscription id.
                for sub in list(connection.subscriptions.values()):
                    if sub.kind == "signature":
                        self._check_signature(sub)
        except ConnectionClosed:
            pass
        finally:
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await writer
            for sub_id in connection.subscriptions:
                self.subscriptions.pop(sub_id, None)

    def _handle_text(self, connection: Connection, text: str | bytes) -> list[dict[str, Any]]:
        try:
            request = json.loads(text)
        except (ValueError, UnicodeDecodeError):
            return [_error(None, RpcError(-32700, "Parse error"))]
        requests = request if isinstance(request, list) else [request]
        if not requests:
            return [_error(None, RpcError(INVALID_REQUEST, "Invalid request"))]
        return [self._handle_one(connection, item) for item in requests]

    def _handle_one(self, connection: Connection, request: Any) -> dict[str, Any]:
        if not isinstance(request, dict) or not isinstance(request.get("method"), str):
            return _error(None, RpcError(INVALID_REQUEST, "Invalid request"))
        request_id = request.get("id")
        try:
            result = self._dispatch(connection, request["method"], request.get("params"))
        except RpcError as error:
            return _error(request_id, error)
        except Exception:
            log.exception("pubsub request failed")
            return _error(request_id, RpcError(-32603, "Internal error"))
        return {"jsonrpc": "2.0", "result": result, "id": request_id}

    def _dispatch(self, connection: Connection, method: str, raw_params: Any) -> Any:
        params = p.positional(raw_params)
        if method in _UNSUBSCRIBE:
            sub_id = p.integer(p.required(params, 0, "subscription id"), "subscription id")
            sub = connection.subscriptions.get(sub_id)
            if sub is None or sub.kind != _UNSUBSCRIBE[method]:
                raise invalid_params("Invalid subscription id.")
            del connection.subscriptions[sub_id]
            self.subscriptions.pop(sub_id, None)
            return True
        kind = _KINDS.get(method)
        if kind is None:
            raise RpcError(METHOD_NOT_FOUND, "Method not found")
        sub = self._subscription(connection, kind, params)
        connection.subscriptions[sub.id] = sub
        self.subscriptions[sub.id] = sub
        return sub.id

    def _subscription(self, connection: Connection, kind: str, params: list[Any]) -> Subscription:
        sub = Subscription(next(self._ids), kind, connection)
        cfg_index = 1
        if kind == "signature":
            sub.target = str(p.signature(p.required(params, 0, "signature")))
        elif kind in ("account", "program"):
            sub.target = p.pubkey(p.required(params, 0, "pubkey"))
        elif kind == "logs":
            mentions = p.required(params, 0, "filter")
            if mentions in ("all", "allWithVotes"):
                sub.target = None
            elif isinstance(mentions, dict) and isinstance(mentions.get("mentions"), list):
                if len(mentions["mentions"]) != 1:
                    raise invalid_params(
                        'Invalid Request: Only 1 address supported in "mentions" filter'
                    )
                sub.target = str(p.pubkey(mentions["mentions"][0]))
            else:
                raise invalid_params("Invalid params: unknown logs filter.")
        else:
            cfg_index = 0
        cfg = p.config(params, cfg_index) if kind not in ("slot", "root") else {}
        sub.commitment = p.commitment(cfg)
        sub.encoding = str(cfg.get("encoding") or ("base64" if kind == "program" else "binary"))
        if kind == "program":
            sub.filters = cfg.get("filters") or []
        sub.last_slot = self.ledger.slot_at(sub.commitment)
        if kind == "account":
            sub.last_value = self._account_value(sub)
        if kind == "root":
            sub.last_value = self.ledger.slot_at("finalized")
        return sub

    # --- notifications -----------------------------------------------------------

    def on_block(self) -> None:
        """Notify every subscription about slots that reached its commitment since last time."""
        for sub in list(self.subscriptions.values()):
            try:
                self._notify(sub)
            except Exception:
                log.exception("pubsub notification failed")

    def _notify(self, sub: Subscription) -> None:
        ledger = self.ledger
        top = ledger.slot_at(sub.commitment)
        if sub.kind == "slot":
            current = ledger.blocks[ledger.slot]
            self._send(
                sub,
                "slotNotification",
                {
                    "parent": current.parent_slot,
                    "root": ledger.slot_at("finalized"),
                    "slot": current.slot,
                },
            )
            return
        if sub.kind == "root":
            root = ledger.slot_at("finalized")
            if root != sub.last_value:
                sub.last_value = root
                self._send(sub, "rootNotification", root)
            return
        if top <= sub.last_slot:
            return
        first = sub.last_slot + 1
        sub.last_slot = top
        if sub.kind == "signature":
            self._check_signature(sub)
        elif sub.kind == "account":
            value = self._account_value(sub)
            if value != sub.last_value:
                sub.last_value = value
                self._send(sub, "accountNotification", self._context(top, value))
        else:
            for slot in range(max(first, top - 512), top + 1):
                block = ledger.blocks.get(slot)
                if block is not None:
                    self._notify_block(sub, slot, block.signatures)

    def _notify_block(self, sub: Subscription, slot: int, signatures: list[str]) -> None:
        ledger = self.ledger
        seen: set[Pubkey] = set()
        for signature in signatures:
            record = ledger.landed.get(signature)
            if record is None:
                continue
            if sub.kind == "logs":
                if sub.target is None or sub.target in record.account_keys:
                    self._send(
                        sub,
                        "logsNotification",
                        self._context(
                            slot, {"err": record.err, "logs": record.logs, "signature": signature}
                        ),
                    )
                continue
            for key in writable_keys(record.transaction.message):
                if key in seen:
                    continue
                seen.add(key)
                account = ledger.get_account(key, sub.commitment)
                if account is None or account.owner != sub.target:
                    continue
                if not _passes(account.data, sub.filters):
                    continue
                encoded = encode_account(
                    account, sub.encoding, None, lambda k: ledger.get_account(k, sub.commitment)
                )
                self._send(
                    sub,
                    "programNotification",
                    self._context(slot, {"account": encoded, "pubkey": str(key)}),
                )

    def _check_signature(self, sub: Subscription) -> None:
        record = self.ledger.landed.get(sub.target)
        if record is None or not self.ledger.visible_at(record, sub.commitment):
            return
        self._send(sub, "signatureNotification", self._context(record.slot, {"err": record.err}))
        sub.connection.subscriptions.pop(sub.id, None)
        self.subscriptions.pop(sub.id, None)

    def _account_value(self, sub: Subscription) -> Any:
        ledger = self.ledger
        account = ledger.get_account(sub.target, sub.commitment)
        if account is None:
            return {
                "data": ["", "base64"] if sub.encoding != "binary" else "",
                "executable": False,
                "lamports": 0,
                "owner": "11111111111111111111111111111111",
                "rentEpoch": 0,
                "space": 0,
            }
        return encode_account(
            account, sub.encoding, None, lambda k: ledger.get_account(k, sub.commitment)
        )

    def _context(self, slot: int, value: Any) -> dict[str, Any]:
        return {"context": {"apiVersion": SOLANA_CORE_VERSION, "slot": slot}, "value": value}

    def _send(self, sub: Subscription, method: str, result: Any) -> None:
        sub.connection.send(
            {
                "jsonrpc": "2.0",
                "method": method,
                "params": {"result": result, "subscription": sub.id},
            }
        )


def _passes(data: bytes, filters: list[Any]) -> bool:
    for item in filters:
        if not isinstance(item, dict):
            return False
        if "dataSize" in item and len(data) != item["dataSize"]:
            return False
        memcmp = item.get("memcmp")
        if isinstance(memcmp, dict):
            try:
                wanted = p.decode_bytes(
                    memcmp.get("bytes"), memcmp.get("encoding", "base58"), 175, "memcmp bytes"
                )
            except RpcError:
                return False
            offset = int(memcmp.get("offset", 0))
            if data[offset : offset + len(wanted)] != wanted:
                return False
    return True


def _error(request_id: Any, error: RpcError) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "error": error.to_json(), "id": request_id}
