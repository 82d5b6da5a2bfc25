"""The outbox relay: requests the ticket service writes into its own transactions.

The ticket service inserts an `outbox` row (`nft.mint_requested`,
`nft.transfer_requested`, `nft.burn_requested`, `nft.metadata_update_requested`) in the
same transaction as its own change (migration 114's trigger writes the last when a minted
ticket is checked in). A relay claims a batch of such rows of every tenant (FOR UPDATE
SKIP LOCKED, through `chainworker_claim_outbox_requests`), and for each, in one
transaction: records the request (duplicates collapse onto the live one; a metadata
update is keyed by its row, so the same row relayed twice is one request) and marks the
row processed. Two relays never take the same row, and a row is marked exactly when its
request is recorded. Jobs are enqueued after commit (the sweeper covers a crash in
between).

A row that cannot be turned into a request is given `last_error` and `attempts + 1`.
One that can never become one (a payload of the wrong shape, over 16 KiB or nested over
16 deep, the wrong aggregate_type, an error of its own) is quarantined at once: processed
and `quarantined_at` set, counted in `chainworker_quarantined_total`. One that names a
ticket or transfer not (yet) there is retried after a backoff, and quarantined after
`outbox_max_attempts`. It never blocks the rows behind it: the payload is checked in SQL
and never parsed here. Events chainworker itself emits (`ticket.minted`, ...) are not
claimed.
"""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

import asyncpg

from chainworker.db import outbox, requests, tickets
from chainworker.db.errors import is_transient
from chainworker.db.outbox import OutboxRequest
from chainworker.db.pool import Connection, set_context
from chainworker.db.requests import NewRequest
from chainworker.lifecycle.metadata import MetadataChange, check_change
from chainworker.lifecycle.model import BurnReason, QuarantineReason, TxOp
from chainworker.obs import logs, metrics
from chainworker.pipeline.context import JobQueue, QueuedJob

# event type -> (operation, the aggregate_type the row must name)
RELAYED_EVENTS: dict[str, tuple[TxOp, str]] = {
    "nft.mint_requested": (TxOp.MINT, "ticket"),
    "nft.transfer_requested": (TxOp.TRANSFER, "ticket_transfer"),
    "nft.burn_requested": (TxOp.BURN, "ticket"),
    "nft.metadata_update_requested": (TxOp.METADATA_UPDATE, "ticket"),
}
BATCH_SIZE = 200
MAX_BACKOFF_SECONDS = 3600.0

log = logs.get_logger(__name__)


class MalformedEvent(Exception):
    """The row cannot become a request; the message is stored in `last_error`.

    `lasting`: trying again cannot help (the row is set aside at once); otherwise what it
    names may still appear, and the row is retried with a backoff.
    """

    def __init__(self, message: str, reason: QuarantineReason, *, lasting: bool = True) -> None:
        super().__init__(message)
        self.reason = reason
        self.lasting = lasting


@dataclass(frozen=True, slots=True)
class RelayResult:
    claimed: int
    recorded: int  # rows turned into a request (new or the live one)
    failed: int  # rows given an error (retried later, or set aside)
    quarantined: int = 0  # of those, rows set aside for a person


@dataclass(frozen=True, slots=True)
class _Intent:
    operation: TxOp
    ticket_id: UUID | None
    transfer_id: UUID | None
    reason: str | None
    changes: MetadataChange | None = None


def parse_event(row: OutboxRequest) -> _Intent:
    """What the row asks for; MalformedEvent when its shape is wrong."""
    kind = RELAYED_EVENTS.get(row.event_type)
    if kind is None:
        raise MalformedEvent(
            f"event type {row.event_type!r} is not relayed", QuarantineReason.BAD_ROW
        )
    operation, aggregate_type = kind
    if row.aggregate_type != aggregate_type:
        raise MalformedEvent(
            f"{row.event_type} needs aggregate_type {aggregate_type!r}, "
            f"not {row.aggregate_type[:100]!r}",
            QuarantineReason.BAD_ROW,
        )
    if row.problem is not None:
        raise MalformedEvent(row.problem, QuarantineReason.BAD_PAYLOAD)
    if operation is TxOp.TRANSFER:
        return _Intent(TxOp.TRANSFER, None, row.aggregate_id, None)
    if operation is TxOp.BURN:
        if row.reason not in set(BurnReason):
            raise MalformedEvent(
                f"payload.reason must be revoke or refund, not {row.reason!r}",
                QuarantineReason.BAD_PAYLOAD,
            )
        return _Intent(TxOp.BURN, row.aggregate_id, None, row.reason)
    if operation is TxOp.METADATA_UPDATE:
        # The claim handed over the payload's fields and keys as text (their shape checked
        # in SQL); their rules are the same as for every other way in.
        fields = dict(zip(row.field_keys or [], row.field_values or [], strict=True))
        try:
            change = check_change(fields, row.remove_keys or [])
        except ValueError as error:
            raise MalformedEvent(f"payload: {error}", QuarantineReason.BAD_PAYLOAD) from None
        return _Intent(TxOp.METADATA_UPDATE, row.aggregate_id, None, None, change)
    return _Intent(TxOp.MINT, row.aggregate_id, None, None)


async def _record(conn: Connection, row: OutboxRequest) -> tuple[UUID, TxOp, bool]:
    intent = parse_event(row)
    ticket_id = intent.ticket_id
    if intent.transfer_id is not None:
        transfer = await tickets.lock_transfer(conn, intent.transfer_id)
        if transfer is None:
            raise MalformedEvent(
                f"no transfer {intent.transfer_id} in this tenant", QuarantineReason.NOT_FOUND,
                lasting=False,
            )
        ticket_id = transfer.ticket_id
    assert ticket_id is not None
    if await tickets.get_ticket(conn, ticket_id) is None:
        raise MalformedEvent(
            f"no ticket {ticket_id} in this tenant", QuarantineReason.NOT_FOUND, lasting=False
        )
    item = NewRequest(
        ticket_id, intent.operation, transfer_id=intent.transfer_id, reason=intent.reason,
        changes=intent.changes,
        # the row is the ask: delivered again, it finds the request it made
        key=f"outbox:{row.id}" if intent.changes is not None else None,
    )
    [recorded] = await requests.record_requests(
        conn, row.tenant_id, intent.operation, [item], "outbox"
    )
    await outbox.mark_processed(conn, row.id)
    return recorded.request_id, intent.operation, recorded.created


async def _mark_failed(
    conn: Connection, row: OutboxRequest, failure: MalformedEvent, max_attempts: int,
    retry_seconds: float,
) -> bool:
    """Record the error; True when the row was set aside (quarantined)."""
    quarantine = failure.lasting or row.attempts + 1 >= max_attempts
    backoff = min(MAX_BACKOFF_SECONDS, retry_seconds * 2**min(row.attempts, 30))
    await outbox.mark_failed(conn, row.id, str(failure)[:1000], quarantine, backoff)
    if quarantine:
        metrics.QUARANTINED.labels(kind="outbox", reason=failure.reason).inc()
    return quarantine


async def relay_once(
    pool: asyncpg.Pool,
    queue: JobQueue,
    *,
    max_attempts: int,
    retry_seconds: float,
    batch_size: int = BATCH_SIZE,
) -> RelayResult:
    """Claim one batch, record its requests, mark its rows; then enqueue the new jobs.

    A row that cannot be handled, whatever the reason, undoes only itself (a savepoint)
    and is given its error: no row can stop the batch, and none sorts first forever.
    """
    to_enqueue: list[QueuedJob] = []
    recorded = failed = quarantined = 0
    async with pool.acquire() as conn, conn.transaction():
        rows = await outbox.claim_requests(conn, batch_size)
        for row in rows:
            try:
                async with conn.transaction():  # a savepoint: one bad row undoes only itself
                    await set_context(
                        conn, row.tenant_id, reason=f"{row.event_type} relayed", source="outbox"
                    )
                    request_id, operation, created = await _record(conn, row)
            except MalformedEvent as error:
                failure = error
            except Exception as error:
                if is_transient(error):
                    raise  # not this row's fault: the batch is claimed again
                failure = MalformedEvent(
                    f"{type(error).__name__}: {error}", QuarantineReason.UNHANDLED
                )
            else:
                recorded += 1
                if created:
                    to_enqueue.append((request_id, row.tenant_id, TxOp(operation)))
                continue
            await set_context(conn, row.tenant_id, reason="outbox row refused", source="outbox")
            set_aside = await _mark_failed(conn, row, failure, max_attempts, retry_seconds)
            failed += 1
            quarantined += set_aside
            log.warning(
                "outbox row set aside" if set_aside else "outbox row refused; will retry",
                outbox_id=row.id, error=str(failure)[:300], quarantined=set_aside,
            )
    if to_enqueue:
        await queue.enqueue(to_enqueue)
    return RelayResult(
        claimed=len(rows), recorded=recorded, failed=failed, quarantined=quarantined
    )
