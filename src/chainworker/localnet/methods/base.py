"""What every family of JSON-RPC methods shares: the ledger, the view, the read checks.

Reads go through a `LedgerView` (the endpoint's, which may lag behind the
cluster); writes (sends, airdrops) go to the shared ledger. Each family is a
mixin over `MethodsBase`; `table.Methods` puts them together.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from solders.account import Account
from solders.pubkey import Pubkey

from chainworker.localnet import params as p
from chainworker.localnet.encoding import ACCOUNT_ENCODINGS
from chainworker.localnet.errors import (
    MIN_CONTEXT_SLOT_NOT_REACHED,
    NODE_UNHEALTHY,
    RpcError,
    invalid_params,
)
from chainworker.localnet.faults import LedgerFaults
from chainworker.localnet.ledger import Commitment, Ledger
from chainworker.localnet.view import LedgerView

SOLANA_CORE_VERSION = "2.2.0"
# A node further behind than this reports itself unhealthy (agave's default distance).
HEALTH_CHECK_SLOT_DISTANCE = 128
# getLargestAccounts and getTokenLargestAccounts both answer at most this many.
LARGEST_ACCOUNTS = 20

Handler = Callable[[list[Any]], Any]


class MethodsBase:
    def __init__(
        self,
        ledger: Ledger,
        faults: LedgerFaults,
        *,
        view: LedgerView | None = None,
        rpc_url: str = "",
        ws_url: str = "",
    ) -> None:
        self.ledger = ledger
        self.view = view if view is not None else LedgerView(ledger)
        self.faults = faults
        self.rpc_url = rpc_url
        self.ws_url = ws_url

    def _context(self, value: Any, commitment: Commitment = "processed") -> dict[str, Any]:
        return {
            "context": {"apiVersion": SOLANA_CORE_VERSION, "slot": self.view.slot_at(commitment)},
            "value": value,
        }

    def _check_min_context(self, cfg: dict[str, Any], commitment: Commitment) -> None:
        wanted = cfg.get("minContextSlot")
        if wanted is None:
            return
        current = self.view.slot_at(commitment)
        if p.integer(wanted, "minContextSlot") > current:
            raise RpcError(
                MIN_CONTEXT_SLOT_NOT_REACHED,
                "Minimum context slot has not been reached",
                {"contextSlot": current},
            )

    def _read(self, cfg: dict[str, Any]) -> Commitment:
        level = p.commitment(cfg)
        self._check_min_context(cfg, level)
        return level

    def _mint_lookup(self, commitment: Commitment) -> Callable[[Pubkey], Account | None]:
        return lambda key: self.view.get_account(key, commitment)

    def _encoding(self, cfg: dict[str, Any], default: str) -> str:
        encoding = cfg.get("encoding", default) or default
        if encoding not in ACCOUNT_ENCODINGS and encoding != "base64+zstd":
            raise invalid_params(f"Invalid params: unknown variant `{encoding}`.")
        if encoding == "base64+zstd":
            raise invalid_params("Invalid params: base64+zstd encoding is not supported here.")
        return str(encoding)

    def _check_health(self) -> None:
        behind = self.view.lag
        if behind > HEALTH_CHECK_SLOT_DISTANCE:
            raise RpcError(
                NODE_UNHEALTHY,
                f"Node is behind by {behind} slots",
                {"numSlotsBehind": behind},
            )
