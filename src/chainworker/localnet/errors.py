"""JSON-RPC errors with the codes and messages a Solana validator uses."""

from __future__ import annotations

from typing import Any

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603

# Solana server errors (agave rpc/src/custom_error.rs).
BLOCK_CLEANED_UP = -32001
SEND_TRANSACTION_PREFLIGHT_FAILURE = -32002
TRANSACTION_SIGNATURE_VERIFICATION_FAILURE = -32003
BLOCK_NOT_AVAILABLE = -32004
NODE_UNHEALTHY = -32005
TRANSACTION_PRECOMPILE_VERIFICATION_FAILURE = -32006
SLOT_SKIPPED = -32007
LONG_TERM_STORAGE_SLOT_SKIPPED = -32009
MIN_CONTEXT_SLOT_NOT_REACHED = -32016


class RpcError(Exception):
    """An error answered as a JSON-RPC error object."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.data is not None:
            body["data"] = self.data
        return body


def invalid_params(message: str) -> RpcError:
    return RpcError(INVALID_PARAMS, message)
