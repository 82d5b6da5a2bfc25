"""The one error type of the Solana edge: every failure below `chain/` surfaces as ChainError."""

from __future__ import annotations

from typing import Final

# The kinds callers branch on; kept as plain strings so metrics can use them as labels.
TRANSPORT: Final = "transport"
RATE_LIMITED: Final = "rate_limited"
UNAVAILABLE: Final = "unavailable"
TIMEOUT: Final = "timeout"
RPC: Final = "rpc"
BAD_RESPONSE: Final = "bad_response"
CONFIG: Final = "config"
# The account at an address exists but is not what was expected (e.g. not a Token-2022 mint).
UNEXPECTED_ACCOUNT: Final = "unexpected_account"
# A simulation ran and the transaction failed in it.
SIMULATION: Final = "simulation"

# Kinds worth another attempt right away (possibly on another endpoint).
RETRYABLE_KINDS: Final = frozenset({TRANSPORT, RATE_LIMITED, UNAVAILABLE, TIMEOUT})
# Kinds that say something about the request or the setup, not about this moment: the
# same work fails the same way later.
LASTING_KINDS: Final = frozenset({CONFIG, UNEXPECTED_ACCOUNT, SIMULATION})


class ChainError(Exception):
    """A failure talking to Solana or preparing to.

    `kind` is one of the constants above; `endpoint` is a bounded label (index and host),
    never a full URL, because URLs can carry API keys.
    """

    def __init__(
        self,
        kind: str,
        message: str,
        *,
        endpoint: str | None = None,
        code: int | None = None,
    ) -> None:
        self.kind = kind
        self.message = message
        self.endpoint = endpoint
        self.code = code
        where = f" at {endpoint}" if endpoint else ""
        super().__init__(f"{kind}{where}: {message}")

    @property
    def retryable(self) -> bool:
        """Worth the same call again now, on this endpoint or another (the RPC client's
        failover)."""
        return self.kind in RETRYABLE_KINDS

    def is_transient(self) -> bool:
        """Not now, rather than not this: the chain may answer the same work later (a node
        that answered garbage or an error may be behind, or replaced by another)."""
        return self.kind not in LASTING_KINDS
