"""Compute-budget arithmetic: unit limit from simulation, unit price from recent fees."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Final

from solders.compute_budget import ID as COMPUTE_BUDGET_PROGRAM
from solders.transaction import VersionedTransaction

MAX_COMPUTE_UNITS: Final = 1_400_000
LAMPORTS_PER_SIGNATURE: Final = 5_000
MICRO_LAMPORTS_PER_LAMPORT: Final = 1_000_000
_SET_COMPUTE_UNIT_LIMIT: Final = 2
_SET_COMPUTE_UNIT_PRICE: Final = 3


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


def replacement_price(
    recent: int, attempt: int, *, factor: float, floor: int, cap: int
) -> int:
    """The unit price of the `attempt`-th attempt of a request, capped.

    The first offers the recent price. Each replacement follows an attempt that expired
    unlanded, so it offers `factor` times more than the one before would have: the recent
    price, or the floor where nobody paid anything, raised once per earlier attempt.
    """
    if attempt < 1:
        raise ValueError("attempts are numbered from 1")
    if factor < 1.0:
        raise ValueError("the raise factor must be at least 1.0")
    cap = max(0, cap)
    if attempt == 1:
        return min(max(0, recent), cap)
    start = max(recent, floor, 0)
    raised = start * factor ** (attempt - 1) if start else 0.0
    if raised >= cap:
        return cap
    return min(cap, math.ceil(raised))


def priority_fee(unit_limit: int, unit_price: int) -> int:
    """Lamports of priority fee: the price per unit times the units asked for, rounded up."""
    return -(-max(0, unit_limit) * max(0, unit_price) // MICRO_LAMPORTS_PER_LAMPORT)


def requested_budget(raw: bytes) -> tuple[int | None, int, int] | None:
    """(unit limit asked for or None, unit price in micro-lamports, signatures) of signed
    transaction bytes; None for bytes that are no transaction (a row read without them)."""
    try:
        transaction = VersionedTransaction.from_bytes(raw)
    except ValueError:
        return None
    message = transaction.message
    keys = message.account_keys
    limit: int | None = None
    price = 0
    for instruction in message.instructions:
        index = instruction.program_id_index
        if index >= len(keys):  # a program outside the message's keys: no transaction
            return None
        if keys[index] != COMPUTE_BUDGET_PROGRAM:
            continue
        data = bytes(instruction.data)
        if data[:1] == bytes([_SET_COMPUTE_UNIT_LIMIT]) and len(data) >= 5:
            limit = int.from_bytes(data[1:5], "little")
        elif data[:1] == bytes([_SET_COMPUTE_UNIT_PRICE]) and len(data) >= 9:
            price = int.from_bytes(data[1:9], "little")
    return limit, price, message.header.num_required_signatures


def fee_of(raw: bytes) -> tuple[int, int] | None:
    """(unit price in micro-lamports, fee in lamports) of signed transaction bytes, as the
    validator charges them: 5,000 per signature plus the priority fee on the unit limit
    asked for. A transaction without SetComputeUnitPrice pays no priority fee. None for
    bytes that are no transaction."""
    budget = requested_budget(raw)
    if budget is None:
        return None
    limit, price, signatures = budget
    return price, signatures * LAMPORTS_PER_SIGNATURE + priority_fee(limit or 0, price)
