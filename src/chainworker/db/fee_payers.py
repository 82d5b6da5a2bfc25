"""The fee-payer top-ups table: record one before it is sent, list the live ones, settle."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from chainworker.db.pool import Connection


@dataclass(frozen=True, slots=True)
class LiveTopUp:
    id: int
    payer: str
    tx_signature: str
    last_valid_block_height: int
    serialized_tx: bytes
    last_sent_at: datetime | None
    expiry_check_pending: bool


@dataclass(frozen=True, slots=True)
class NewTopUp:
    payer: str
    lamports: int
    balance_before: int
    tx_signature: str
    blockhash: str
    last_valid_block_height: int
    serialized_tx: bytes


async def record(conn: Connection, top_up: NewTopUp) -> bool:
    """Record a top-up before it is sent; False when one is already live for the payer."""
    inserted = await conn.fetchval(
        "INSERT INTO chainworker_fee_payer_top_ups"
        " (payer, lamports, balance_before, tx_signature, blockhash, last_valid_block_height,"
        "  serialized_tx)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7)"
        " ON CONFLICT (payer) WHERE status = 'pending' DO NOTHING RETURNING id",
        top_up.payer, top_up.lamports, top_up.balance_before, top_up.tx_signature,
        top_up.blockhash, top_up.last_valid_block_height, top_up.serialized_tx,
    )
    return inserted is not None


async def live(conn: Connection) -> list[LiveTopUp]:
    rows = await conn.fetch(
        "SELECT id, payer, tx_signature, last_valid_block_height, serialized_tx,"
        " last_sent_at, expiry_check_pending"
        " FROM chainworker_fee_payer_top_ups WHERE status = 'pending' ORDER BY id"
    )
    return [LiveTopUp(**dict(row)) for row in rows]


async def settle(
    conn: Connection, top_up_id: int, status: str, *, slot: int | None = None,
    error: str | None = None,
) -> bool:
    """End a live top-up as confirmed, failed or expired; False when it was not live."""
    done = await conn.fetchval(
        "UPDATE chainworker_fee_payer_top_ups"
        " SET status = $2, slot = $3, error_message = $4, settled_at = now()"
        " WHERE id = $1 AND status = 'pending' RETURNING id",
        top_up_id, status, slot, error,
    )
    return done is not None


async def mark_sent_by_signature(conn: Connection, signatures: list[str]) -> None:
    await conn.execute(
        "UPDATE chainworker_fee_payer_top_ups SET last_sent_at = now()"
        " WHERE tx_signature = ANY($1::text[]) AND status = 'pending'",
        signatures,
    )


async def mark_expiry_check(conn: Connection, top_up_id: int) -> None:
    await conn.execute(
        "UPDATE chainworker_fee_payer_top_ups SET expiry_check_pending = true"
        " WHERE id = $1 AND status = 'pending'",
        top_up_id,
    )
