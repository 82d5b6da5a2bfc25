"""Compute-budget arithmetic: unit limit from simulation, unit price from recent fees."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Final

MAX_COMPUTE_UNITS: Final = 1_400_000


def compute_unit_limit(simulated_units: int, margin: float, headroom: int = 0) -> int:
    """Simulated units times the margin plus a fixed headroom, rounded up, within 1..1.4M.

    The headroom covers costs a single simulation cannot see, such as the bump search of
    a program-derived address, which differs from one holder to the next.
    """
    if simulated_units < 0:
        raise ValueError("simulated units must not be negative")
    if margin < 1.0:
        raise ValueError("the compute unit margin must be at least 1.0")
    if headroom < 0:
        raise ValueError("the compute unit headroom must not be negative")
    return max(1, min(MAX_COMPUTE_UNITS, math.ceil(simulated_units * margin) + headroom))


def compute_unit_price(recent_fees: Sequence[int], percentile: int, max_microlamports: int) -> int:
    """The `percentile`-th of recent prioritization fees (nearest rank), capped.

    No recent fees means nobody is competing: price 0.
    """
    if not 0 <= percentile <= 100:
        raise ValueError("percentile must be within 0..100")
    if not recent_fees:
        return 0
    ordered = sorted(max(0, fee) for fee in recent_fees)
    rank = max(1, math.ceil(percentile / 100 * len(ordered)))
    return min(ordered[rank - 1], max(0, max_microlamports))
