"""Fault injection: what the localnet does wrong on purpose, and when.

Every random choice draws from one `random.Random(seed)`, so a run with the same
seed and the same request sequence makes the same choices.

Settings (GET/POST/DELETE /admin/faults; the same names as CLI flags):

- ``drop_rate`` (0-1): that fraction of accepted sendTransaction calls answer
  with the signature but the transaction never lands.
- ``drop_first_sends`` (int): the first K sends of each signature are dropped
  that way; send K+1 lands.
- ``land_delay_slots`` (int): a transaction lands N slots later than it would
  (in block ``current slot + 1 + N``).
- ``http_error_rate`` (0-1) with ``http_error_status`` (429 or 503): that
  fraction of JSON-RPC HTTP requests is answered with the status and no
  JSON-RPC body.
- ``stall_rate`` (0-1) with ``stall_seconds`` (float): that fraction of JSON-RPC
  HTTP requests is held for ``stall_seconds`` before being answered normally.
- ``clock_frozen`` (bool): no blocks are produced; slot, block height and
  blockhash stay put and sent transactions wait.
- ``warp_slots`` (int, applied once): that many blocks are produced at once,
  as if that many slots passed in an instant (queued transactions land in the
  first of them). With ``clock_frozen`` this steps the cluster one block at a
  time. Reads back as 0.
- ``fork_unconfirmed`` (bool, applied once): every block above the confirmed
  slot loses its transactions (their effects are rolled back, their signatures
  become unknown); clients must rebroadcast. Reads back as false.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, fields
from typing import Any

HTTP_ERROR_STATUSES = (429, 503)


@dataclass
class FaultSettings:
    drop_rate: float = 0.0
    drop_first_sends: int = 0
    land_delay_slots: int = 0
    http_error_rate: float = 0.0
    http_error_status: int = 429
    stall_rate: float = 0.0
    stall_seconds: float = 0.0
    clock_frozen: bool = False
    warp_slots: int = 0
    fork_unconfirmed: bool = False


_RATES = ("drop_rate", "http_error_rate", "stall_rate")
_COUNTS = ("drop_first_sends", "land_delay_slots", "warp_slots")
MAX_WARP_SLOTS = 100_000


def validate(changes: Any) -> dict[str, Any]:
    """Check a partial settings object; raises ValueError naming the bad field."""
    if not isinstance(changes, dict):
        raise ValueError("faults must be a JSON object")
    known = {f.name for f in fields(FaultSettings)}
    clean: dict[str, Any] = {}
    for name, value in changes.items():
        if name not in known:
            raise ValueError(f"unknown fault {name!r}; known: {', '.join(sorted(known))}")
        if name in _RATES:
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
                raise ValueError(f"{name} must be a number from 0 to 1")
            clean[name] = float(value)
        elif name in _COUNTS:
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be a non-negative integer")
            if name == "warp_slots" and value > MAX_WARP_SLOTS:
                raise ValueError(f"warp_slots must be at most {MAX_WARP_SLOTS}")
            clean[name] = value
        elif name == "http_error_status":
            if value not in HTTP_ERROR_STATUSES:
                raise ValueError("http_error_status must be 429 or 503")
            clean[name] = value
        elif name == "stall_seconds":
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise ValueError("stall_seconds must be a non-negative number")
            clean[name] = float(value)
        else:
            if not isinstance(value, bool):
                raise ValueError(f"{name} must be true or false")
            clean[name] = value
    return clean


class Faults:
    def __init__(self, seed: int = 0) -> None:
        self.settings = FaultSettings()
        self._rng = random.Random(seed)
        self._sends: dict[str, int] = {}

    def snapshot(self) -> dict[str, Any]:
        return asdict(self.settings)

    def merge(self, changes: dict[str, Any]) -> tuple[int, bool]:
        """Apply validated changes; returns the one-shot (warp_slots, fork_unconfirmed)."""
        clean = validate(changes)
        warp = clean.pop("warp_slots", 0)
        fork = clean.pop("fork_unconfirmed", False)
        for name, value in clean.items():
            setattr(self.settings, name, value)
        return warp, fork

    def clear(self) -> None:
        self.settings = FaultSettings()
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

    def http_fault(self) -> tuple[str, float] | None:
        """("error", status) or ("stall", seconds) for this request, or None."""
        settings = self.settings
        if settings.http_error_rate > 0 and self._rng.random() < settings.http_error_rate:
            return "error", float(settings.http_error_status)
        if settings.stall_rate > 0 and self._rng.random() < settings.stall_rate:
            return "stall", settings.stall_seconds
        return None
