"""Whether a block height an RPC endpoint reports can decide anything.

Expiry is irreversible: an attempt judged expired is replaced, and if it lands after all,
both may land. So the height that decides it is checked against what was already seen
before it is believed:

- it is an integer a cluster can have (0 <= height < 2**62);
- it never goes back on the endpoint that reported it (a load balancer that switched to a
  node behind the one it used before answers from an older view of the chain);
- it is not beyond what the cluster can have produced since the highest height accepted
  from any endpoint: at most MAX_BLOCKS_PER_SECOND faster, plus MARGIN_BLOCKS for warps and
  catch-ups (garbage such as 2**63 or 10**30 is far beyond);
- it is not above the slot the same endpoint reported with the statuses read right after
  it (a block height never exceeds its slot).

Plain functions over plain numbers: the RPC client keeps the history and asks.
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_HEIGHT = 2**62
# Faster than any cluster makes blocks: mainnet about 2.5/s, the test localnet 20/s.
MAX_BLOCKS_PER_SECOND = 50.0
MARGIN_BLOCKS = 5_000


@dataclass(frozen=True, slots=True)
class Seen:
    """A height accepted earlier, and when (seconds on a monotonic clock)."""

    height: int
    at: float


def height_problem(
    reported: object,
    *,
    before_on_endpoint: Seen | None,
    highest: Seen | None,
    now: float,
    what: str = "block height",
) -> str | None:
    """Why `reported` cannot be believed; None when it can.

    The same holds for slots (`what="slot"`): they too only grow, at most one per block.
    """
    if isinstance(reported, bool) or not isinstance(reported, int):
        return f"{what} {reported!r} is not an integer"
    if not 0 <= reported < MAX_HEIGHT:
        return f"{what} {reported} is out of range"
    if before_on_endpoint is not None and reported < before_on_endpoint.height:
        return f"{what} went back from {before_on_endpoint.height} to {reported}"
    if highest is not None:
        elapsed = max(0.0, now - highest.at)
        ceiling = highest.height + elapsed * MAX_BLOCKS_PER_SECOND + MARGIN_BLOCKS
        if reported > ceiling:
            return (
                f"{what} {reported} is implausibly far beyond {highest.height} "
                f"seen {elapsed:.0f}s ago"
            )
    return None


def beyond_slot(height: int, slot: int) -> str | None:
    """A block height above the slot the same endpoint reports right after it is garbage."""
    if height > slot:
        return f"block height {height} is above the slot {slot} reported after it"
    return None


def later(seen: Seen | None, height: int, at: float) -> Seen:
    """The highest of what was seen and the new height."""
    if seen is None or height >= seen.height:
        return Seen(height, at)
    return seen
