"""JSON-RPC 2.0 over the method table: one request or a batch, in, answers out."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import orjson

from chainworker.localnet.errors import INTERNAL_ERROR, INVALID_REQUEST, PARSE_ERROR, RpcError
from chainworker.localnet.methods import Methods

log = logging.getLogger(__name__)

MAX_BATCH = 1000


@dataclass
class Reply:
    """The answer before it is serialized: one response object, or a batch's list."""

    payload: Any
    methods: list[str | None]  # the method each response answers (one for a single request)
    batch: bool

    def body(self) -> bytes:
        return orjson.dumps(self.payload)


def error(request_id: Any, rpc_error: RpcError) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "error": rpc_error.to_json(), "id": request_id}


def error_body(request_id: Any, rpc_error: RpcError) -> bytes:
    return orjson.dumps(error(request_id, rpc_error))


def dispatch(methods: Methods, body: bytes) -> Reply:
    try:
        request = orjson.loads(body)
    except orjson.JSONDecodeError:
        return Reply(error(None, RpcError(PARSE_ERROR, "Parse error")), [None], False)
    if isinstance(request, list):
        if not request:
            return Reply(error(None, RpcError(INVALID_REQUEST, "Invalid request")), [None], False)
        if len(request) > MAX_BATCH:
            too_large = RpcError(INVALID_REQUEST, f"Batch too large; max {MAX_BATCH} requests")
            return Reply(error(None, too_large), [None], False)
        answers = [_handle_one(methods, item) for item in request]
        return Reply(answers, [_method_of(item) for item in request], True)
    return Reply(_handle_one(methods, request), [_method_of(request)], False)


def methods_of(body: bytes) -> list[str | None]:
    """The method names a request body asks for (None where one cannot be read)."""
    try:
        request = orjson.loads(body)
    except orjson.JSONDecodeError:
        return [None]
    if isinstance(request, list):
        return [_method_of(item) for item in request[:MAX_BATCH]] or [None]
    return [_method_of(request)]


def _method_of(request: Any) -> str | None:
    method = request.get("method") if isinstance(request, dict) else None
    return method if isinstance(method, str) else None


def _handle_one(methods: Methods, request: Any) -> dict[str, Any]:
    if not isinstance(request, dict):
        return error(None, RpcError(INVALID_REQUEST, "Invalid request"))
    request_id = request.get("id")
    method = request.get("method")
    if request.get("jsonrpc") != "2.0" or not isinstance(method, str):
        return error(request_id, RpcError(INVALID_REQUEST, "Invalid request"))
    try:
        result = methods.call(method, request.get("params"))
    except RpcError as rpc_error:
        return error(request_id, rpc_error)
    except Exception:
        log.exception("method %s failed", method)
        return error(request_id, RpcError(INTERNAL_ERROR, "Internal error"))
    return {"jsonrpc": "2.0", "result": result, "id": request_id}
