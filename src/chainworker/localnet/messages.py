"""What a message says that the ledger needs: its writable keys, its memos, its error's JSON."""

from __future__ import annotations

import json
from typing import Any

from solders.pubkey import Pubkey
from solders.transaction_status import TransactionStatus

from chainworker.localnet.fees import AnyMessage

MEMO_PROGRAMS = frozenset(
    {
        Pubkey.from_string("MemoSq4gqABAXKb96qnH8TysNcWxMyWCqXgDLGmfcHr"),
        Pubkey.from_string("Memo1UhkJRfHyvLMcVucJwxXeuD728EqVDDwQDxFMNo"),
    }
)


def error_json(err: Any) -> Any:
    """The JSON form a validator gives a solders TransactionError."""
    status = TransactionStatus(0, None, err, err, None)
    return json.loads(status.to_json())["err"]


def writable_keys(message: AnyMessage) -> list[Pubkey]:
    header = message.header
    keys = message.account_keys
    signed = header.num_required_signatures
    writable_signed = signed - header.num_readonly_signed_accounts
    writable_unsigned_end = len(keys) - header.num_readonly_unsigned_accounts
    return list(keys[:writable_signed]) + list(keys[signed:writable_unsigned_end])


def extract_memo(message: AnyMessage) -> str | None:
    keys = message.account_keys
    memos = []
    for instruction in message.instructions:
        if keys[instruction.program_id_index] in MEMO_PROGRAMS:
            text = bytes(instruction.data).decode("utf-8", "replace")
            memos.append(f"[{len(text)}] {text}")
    return "; ".join(memos) if memos else None
