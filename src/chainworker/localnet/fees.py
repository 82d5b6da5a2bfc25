"""Fee arithmetic as a validator does it: per-signature fee plus the priority fee."""

from __future__ import annotations

from solders.message import Message, MessageV0, MessageV1
from solders.pubkey import Pubkey

LAMPORTS_PER_SIGNATURE = 5_000
COMPUTE_BUDGET_PROGRAM = Pubkey.from_string("ComputeBudget111111111111111111111111111111")
DEFAULT_UNITS_PER_INSTRUCTION = 200_000
MAX_COMPUTE_UNITS = 1_400_000
MICRO_LAMPORTS_PER_LAMPORT = 1_000_000

AnyMessage = Message | MessageV0 | MessageV1

_SET_COMPUTE_UNIT_LIMIT = 2
_SET_COMPUTE_UNIT_PRICE = 3


def compute_budget(message: AnyMessage) -> tuple[int, int]:
    """(compute unit limit, compute unit price in micro-lamports) requested by the message."""
    keys = message.account_keys
    limit: int | None = None
    price = 0
    other_instructions = 0
    for instruction in message.instructions:
        index = instruction.program_id_index
        # An index past the static keys (a malformed message) is no ComputeBudget call.
        if index >= len(keys) or keys[index] != COMPUTE_BUDGET_PROGRAM:
            other_instructions += 1
            continue
        data = bytes(instruction.data)
        if data[:1] == bytes([_SET_COMPUTE_UNIT_LIMIT]) and len(data) >= 5:
            limit = int.from_bytes(data[1:5], "little")
        elif data[:1] == bytes([_SET_COMPUTE_UNIT_PRICE]) and len(data) >= 9:
            price = int.from_bytes(data[1:9], "little")
    if limit is None:
        limit = DEFAULT_UNITS_PER_INSTRUCTION * other_instructions
    return min(limit, MAX_COMPUTE_UNITS), price


def fee_for_message(message: AnyMessage) -> int:
    limit, price = compute_budget(message)
    priority = -(-price * limit // MICRO_LAMPORTS_PER_LAMPORT)
    return LAMPORTS_PER_SIGNATURE * message.header.num_required_signatures + priority
