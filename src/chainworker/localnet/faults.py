"""Fault injection: what the localnet does wrong on purpose, and when.

Every random choice draws from a seeded `random.Random`: one for the ledger and
one per endpoint, so a run with the same seed and the same request sequence (per
endpoint) makes the same choices. Clearing faults restarts the draws from the
seed, so what follows a clear repeats whatever ran before it.

Settings (GET/POST/DELETE /admin/faults; the same names as CLI flags). Ledger
faults are shared by every endpoint:

- ``drop_rate`` (0-1): that fraction of accepted sendTransaction calls answer
  with the signature but the transaction never lands.
- ``drop_first_sends`` (int): the first K sends of each signature are dropped
  that way; send K+1 lands.
- ``land_delay_slots`` (int): a transaction lands N slots later than it would
  (in block ``current slot + 1 + N``).
- ``clock_frozen`` (bool): no blocks are produced; slot, block height and
  blockhash stay put and sent transactions wait.
- ``warp_slots`` (int, applied once): that many blocks are produced at once,
  as if that many slots passed in an instant (queued transactions land in the
  first of them). With ``clock_frozen`` this steps the cluster one block at a
  time. Reads back as 0.
- ``fork_unconfirmed`` (bool, applied once): every block above the confirmed
  slot loses its transactions (their effects are rolled back, their signatures
  become unknown); clients must rebroadcast. Reads back as false.

Leader settings say how blocks are packed (scheduler.py) and what competes for
them (competing.py). They are shared by every endpoint, like ledger faults, but
describe the cluster rather than a fault: DELETE /admin/faults restores them to
the values the node started with (its flags), not to the defaults:

- ``block_unit_limit`` (int, default 60,000,000; 0: unlimited): the sum of the
  requested compute-unit limits of one block's transactions.
- ``account_unit_limit`` (int, default 24,000,000; 0: unlimited): the same sum
  over the transactions of one block that write-lock one account (the fee payer
  is write-locked). ``--no-block-limits`` sets both to 0.
- ``pending_limit`` (int, default 100,000; 0: unbounded): transactions waiting
  for a block; a full buffer drops the lowest-priority one, the newest first
  among equals.
- ``competing_rate`` (tx/s, default 0: off), ``competing_unit_price``
  (micro-lamports per unit, default 0, at most 10^9), ``competing_unit_limit``
  (requested units, 1-1,400,000, default 200,000), ``competing_accounts``
  (1-10,000, default 16): other users' transfers, each writing one of that many
  accounts of their own, sent into the buffer every slot.

Transactions go into a block by compute-unit price, highest first, then arrival;
what does not fit waits while its blockhash is valid and is then dropped.

Endpoint faults belong to one JSON-RPC endpoint (``/admin/faults`` on its port,
or ``/admin/endpoints/{i}/faults`` on any port):

- ``http_error_rate`` (0-1) with ``http_error_status`` (429 or 503): that
  fraction of JSON-RPC HTTP requests is answered with the status and no
  JSON-RPC body.
- ``stall_rate`` (0-1) with ``stall_seconds`` (float) and ``stall_methods`` (list of
  JSON-RPC methods, empty: all): that fraction of the affected JSON-RPC HTTP requests
  is held for ``stall_seconds`` before being executed and answered normally; one
  whose client goes away meanwhile is never executed (a send held this way and its
  sender killed never reaches the ledger).
- ``lag_slots`` (int, at most 256): the endpoint reads the ledger as of N slots
  ago: slot, block height, blockhash, account state, signature statuses and
  their commitment levels. It refuses a transaction whose blockhash is newer
  than that (-32002 "Blockhash not found", even with skipPreflight) and forwards
  the rest. Beyond 128 slots getHealth and preflight answer -32005 "Node is
  behind by N slots".
- ``garbage_rate`` (0-1) with ``garbage_kinds`` (list, default all) and
  ``garbage_methods`` (list of JSON-RPC methods, empty: all): that fraction of
  the affected requests is executed but answered with garbage of one kind drawn
  from the list: ``wrong_types`` (every integer as a string, every list as an
  object), ``missing_fields`` (``value``, ``context`` or ``context.slot``, a
  member of the result, or the result itself is missing), ``huge_integers``
  (every integer becomes 2**63, 2**64 or 10**30), ``truncated`` (the body cut
  mid-JSON), ``html`` (a proxy's HTML error page, status 200, text/html),
  ``batch_ids`` (batches only: ids missing, duplicated or reordered).
- ``slowloris_rate`` (0-1) with ``slowloris_mode``: that fraction of JSON-RPC
  answers is delivered slowly: ``trickle`` sends the body one byte at a time,
  ``slowloris_byte_seconds`` apart; ``headers_only`` sends status and headers
  and then nothing, until the client gives up.
- ``down`` (bool): the endpoint stops listening (connections are refused, open
  ones are closed) until cleared. Admin stays reachable on the other endpoints'
  ports; the last endpoint that is up cannot go down.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from chainworker.localnet.garbage import GARBAGE_KINDS
from chainworker.localnet.scheduler import LEADER_FIELDS

HTTP_ERROR_STATUSES = (429, 503)
SLOWLORIS_MODES = ("trickle", "headers_only")
MAX_WARP_SLOTS = 100_000
# A lag stays within the blockhashes the ledger remembers and the history it keeps cheaply.
MAX_LAG_SLOTS = 256
MAX_PENDING_LIMIT = 10_000_000
MAX_COMPETING_RATE = 100_000  # transactions per second
MAX_COMPETING_UNIT_PRICE = 10**9  # micro-lamports per unit: 1,000 lamports
MAX_COMPETING_ACCOUNTS = 10_000
MAX_COMPUTE_UNITS = 1_400_000


@dataclass
class LedgerFaultSettings:
    drop_rate: float = 0.0
    drop_first_sends: int = 0
    land_delay_slots: int = 0
    clock_frozen: bool = False
    warp_slots: int = 0
    fork_unconfirmed: bool = False


@dataclass
class EndpointFaultSettings:
    http_error_rate: float = 0.0
    http_error_status: int = 429
    stall_rate: float = 0.0
    stall_seconds: float = 0.0
    stall_methods: list[str] = field(default_factory=list)
    lag_slots: int = 0
    garbage_rate: float = 0.0
    garbage_kinds: list[str] = field(default_factory=lambda: list(GARBAGE_KINDS))
    garbage_methods: list[str] = field(default_factory=list)
    slowloris_rate: float = 0.0
    slowloris_mode: str = "trickle"
    slowloris_byte_seconds: float = 0.1
    down: bool = False


LEDGER_FIELDS = frozenset(f.name for f in fields(LedgerFaultSettings))
ENDPOINT_FIELDS = frozenset(f.name for f in fields(EndpointFaultSettings))


def _rate(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise ValueError(f"{name} must be a number from 0 to 1")
    return float(value)


def _seconds(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ValueError(f"{name} must be a non-negative number")
    return float(value)


def _number(limit: float) -> Callable[[str, Any], float]:
    def check(name: str, value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= limit:
            raise ValueError(f"{name} must be a number from 0 to {limit}")
        return float(value)

    return check


def _between(low: int, high: int) -> Callable[[str, Any], int]:
    def check(name: str, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise ValueError(f"{name} must be an integer from {low} to {high}")
        return value

    return check


def _flag(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be true or false")
    return value


def _count(limit: int | None = None) -> Callable[[str, Any], int]:
    def check(name: str, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"{name} must be a non-negative integer")
        if limit is not None and value > limit:
            raise ValueError(f"{name} must be at most {limit}")
        return value

    return check


def _choice(options: tuple[Any, ...]) -> Callable[[str, Any], Any]:
    def check(name: str, value: Any) -> Any:
        if isinstance(value, bool) or value not in options:
            raise ValueError(f"{name} must be one of {', '.join(map(str, options))}")
        return value

    return check


def _kinds(name: str, value: Any) -> list[str]:
    if not isinstance(value, list) or not value:
        raise ValueError(f"{name} must be a non-empty list of: {', '.join(GARBAGE_KINDS)}")
    unknown = [kind for kind in value if kind not in GARBAGE_KINDS]
    if unknown:
        raise ValueError(f"{name}: unknown kind {unknown[0]!r}; known: {', '.join(GARBAGE_KINDS)}")
    return [kind for kind in GARBAGE_KINDS if kind in value]  # canonical order: draws repeat


def _methods(name: str, value: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(m, str) and m for m in value):
        raise ValueError(f"{name} must be a list of JSON-RPC method names")
    return list(dict.fromkeys(value))


_VALIDATORS: dict[str, Callable[[str, Any], Any]] = {
    "drop_rate": _rate,
    "drop_first_sends": _count(),
    "land_delay_slots": _count(),
    "clock_frozen": _flag,
    "warp_slots": _count(MAX_WARP_SLOTS),
    "fork_unconfirmed": _flag,
    "http_error_rate": _rate,
    "http_error_status": _choice(HTTP_ERROR_STATUSES),
    "stall_rate": _rate,
    "stall_seconds": _seconds,
    "stall_methods": _methods,
    "lag_slots": _count(MAX_LAG_SLOTS),
    "garbage_rate": _rate,
    "garbage_kinds": _kinds,
    "garbage_methods": _methods,
    "slowloris_rate": _rate,
    "slowloris_mode": _choice(SLOWLORIS_MODES),
    "slowloris_byte_seconds": _seconds,
    "down": _flag,
    "block_unit_limit": _count(),
    "account_unit_limit": _count(),
    "pending_limit": _count(MAX_PENDING_LIMIT),
    "competing_rate": _number(MAX_COMPETING_RATE),
    "competing_unit_price": _count(MAX_COMPETING_UNIT_PRICE),
    "competing_unit_limit": _between(1, MAX_COMPUTE_UNITS),
    "competing_accounts": _between(1, MAX_COMPETING_ACCOUNTS),
}


def validate(changes: Any) -> dict[str, Any]:
    """Check a partial settings object; raises ValueError naming the bad field."""
    if not isinstance(changes, dict):
        raise ValueError("faults must be a JSON object")
    clean: dict[str, Any] = {}
    for name, value in changes.items():
        check = _VALIDATORS.get(name)
        if check is None:
            raise ValueError(f"unknown fault {name!r}; known: {', '.join(sorted(_VALIDATORS))}")
        clean[name] = check(name, value)
    return clean


def split(clean: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """Validated changes as (ledger faults, endpoint faults, leader settings)."""
    ledger = {name: value for name, value in clean.items() if name in LEDGER_FIELDS}
    endpoint = {name: value for name, value in clean.items() if name in ENDPOINT_FIELDS}
    leader = {name: value for name, value in clean.items() if name in LEADER_FIELDS}
    return ledger, endpoint, leader


class LedgerFaults:
    """The shared faults: what happens to sent transactions and to the slot clock."""

    def __init__(self, seed: int = 0) -> None:
        self.settings = LedgerFaultSettings()
        self._seed = seed
        self._rng = random.Random(seed)
        self._sends: dict[str, int] = {}

    def snapshot(self) -> dict[str, Any]:
        return asdict(self.settings)

    def merge(self, changes: dict[str, Any]) -> tuple[int, bool]:
        """Apply validated changes; returns the one-shot (warp_slots, fork_unconfirmed)."""
        clean = dict(changes)
        warp = clean.pop("warp_slots", 0)
        fork = clean.pop("fork_unconfirmed", False)
        for name, value in clean.items():
            setattr(self.settings, name, value)
        return warp, fork

    def clear(self) -> None:
        self.settings = LedgerFaultSettings()
        self._rng = random.Random(self._seed)
        self._sends.clear()

    def drop_send(self, signature: str) -> bool:
        """Whether this send of the signature is accepted but never lands."""
        count = self._sends.get(signature, 0) + 1
        if self.settings.drop_first_sends:
            self._sends[signature] = count
            if count <= self.settings.drop_first_sends:
                return True
        rate = self.settings.drop_rate
        return rate > 0 and self._rng.random() < rate


class EndpointFaults:
    """One endpoint's faults, decided per HTTP request from the endpoint's own generator."""

    def __init__(self, seed: int = 0, index: int = 0) -> None:
        self.settings = EndpointFaultSettings()
        self._seed = f"{seed}:endpoint:{index}"
        self.rng = random.Random(self._seed)

    def snapshot(self) -> dict[str, Any]:
        return asdict(self.settings)

    def merge(self, changes: dict[str, Any]) -> None:
        for name, value in changes.items():
            setattr(self.settings, name, list(value) if isinstance(value, list) else value)

    def clear(self) -> None:
        self.settings = EndpointFaultSettings()
        self.rng = random.Random(self._seed)

    def http_fault(
        self, methods: Callable[[], list[str | None]]
    ) -> tuple[str, float] | None:
        """("error", status) or ("stall", seconds) for this request, or None.

        `methods` reads the request's method names, only when a filter needs them."""
        settings = self.settings
        if settings.http_error_rate > 0 and self.rng.random() < settings.http_error_rate:
            return "error", float(settings.http_error_status)
        if settings.stall_rate > 0 and self._stalls(methods) and (
            self.rng.random() < settings.stall_rate
        ):
            return "stall", settings.stall_seconds
        return None

    def _stalls(self, methods: Callable[[], list[str | None]]) -> bool:
        wanted = self.settings.stall_methods
        return not wanted or any(method in wanted for method in methods())

    def affects(self, method: str | None) -> bool:
        """Whether garbage may touch an answer to this method."""
        wanted = self.settings.garbage_methods
        return not wanted or method in wanted

    def garbage_kind(self, methods: list[str | None], batch: bool) -> str | None:
        """The kind of garbage to answer this request with, or None for an honest answer."""
        settings = self.settings
        if settings.garbage_rate <= 0 or not any(self.affects(m) for m in methods):
            return None
        if self.rng.random() >= settings.garbage_rate:
            return None
        kinds = [kind for kind in settings.garbage_kinds if batch or kind != "batch_ids"]
        return self.rng.choice(kinds) if kinds else None

    def slowloris(self) -> tuple[str, float] | None:
        """(mode, seconds per byte) when this answer is to be delivered slowly."""
        settings = self.settings
        if settings.slowloris_rate > 0 and self.rng.random() < settings.slowloris_rate:
            return settings.slowloris_mode, settings.slowloris_byte_seconds
        return None
