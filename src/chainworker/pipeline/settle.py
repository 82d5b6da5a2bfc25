"""Carry out a final decision on a live attempt: confirm, fail, replace or expire it.

Each in one tenant transaction that re-reads the attempt under its lock and acts only if
it is still in the state the decision was made from (another worker, or reconcile, may
have seen something newer). The confirmation round and reconcile both settle through here.
"""

from __future__ import annotations

import time
from collections import defaultdict
from datetime import datetime
from uuid import UUID

from solders.pubkey import Pubkey

from chainworker.chain import fees
from chainworker.chain.errors import UNEXPECTED_ACCOUNT, ChainError
from chainworker.chain.views import SignatureStatusView
from chainworker.db import audit, live_transactions, requests, transactions
from chainworker.db.errors import TicketBusy
from chainworker.db.live_transactions import LiveAttempt, Locked
from chainworker.db.pool import Connection, tenant_transaction
from chainworker.db.requests import RequestRow
from chainworker.db.transactions import AttemptRow
from chainworker.lifecycle import decide
from chainworker.lifecycle.decide import Action
from chainworker.lifecycle.model import ObservedStatus, TxOp, TxSnapshot, TxStatus
from chainworker.lifecycle.observe import custom_program_error, failure_reason, observed_status
from chainworker.lifecycle.transitions import apply_action
from chainworker.obs import logs, metrics
from chainworker.pipeline import outcomes
from chainworker.pipeline.context import JobQueue, PipelineContext
from chainworker.pipeline.prepare import (
    AttemptOf,
    Busy,
    Prepared,
    prefunded_mint_lamports,
    prepare_attempts,
)
from chainworker.pipeline.send import send

ALREADY_IN_USE = 0  # Custom error of a second CreateAccount for the same mint
BLOCKHASH_VALID_BLOCKS = 150

log = logs.get_logger(__name__)


def epoch(moment: datetime | None) -> float | None:
    """A row's time as the lifecycle's decisions take it (seconds since the epoch)."""
    return moment.timestamp() if moment is not None else None


def snapshot(row: LiveAttempt) -> TxSnapshot:
    return TxSnapshot(
        status=row.status,
        attempt=row.attempt,
        last_valid_block_height=row.last_valid_block_height,
        last_sent_at=epoch(row.last_sent_at),
        last_rebroadcast_at=epoch(row.last_rebroadcast_at),
        expiry_check_pending=row.expiry_check_pending,
    )


def observed(view: SignatureStatusView | None) -> ObservedStatus | None:
    """A status as the chain layer read it, as the lifecycle decides on it."""
    if view is None:
        return None
    return observed_status(
        view.slot, view.confirmation_status, view.confirmations,
        view.err.code if view.err else None, view.err.message if view.err else None,
    )


async def settle_landed(
    ctx: PipelineContext, tenant_id: UUID, rows: list[tuple[LiveAttempt, int]], height: int,
    queue: JobQueue | None = None,
) -> None:
    """Confirm landed attempts of one tenant and apply their outcomes, in one transaction.

    `height` is the block height read with their statuses: how many blocks after its
    blockhash each landed is what `chainworker_tx_landing_slots` shows (a blockhash is
    good for 150). The requests the outcomes record (a new mint's verify) are handed to
    `queue` after the commit; without one, or should it fail, the sweeper queues them.
    """
    reason = "chain transaction confirmed"
    async with tenant_transaction(ctx.pool, tenant_id, reason=reason) as conn:
        live = await live_transactions.lock_live_many(conn, [row.id for row, _ in rows])
        still = [(row, slot) for row, slot in rows if row.id in live]
        if not still:
            return
        found = await requests.get_requests(conn, sorted({row.request_id for row, _ in still}))
        items = [
            outcomes.Landed(row, found[row.request_id], slot, live[row.id])
            for row, slot in still
            if row.request_id in found
        ]
        await live_transactions.confirm_many(
            conn, [(i.attempt.tx_signature, i.slot) for i in items]
        )
        await _count_fees(conn, [i.attempt for i in items])
        follow_ups = await outcomes.confirmed(ctx, conn, items)
    if follow_ups and queue is not None:
        try:
            await queue.enqueue(follow_ups)
        except Exception as error:  # recorded already: the sweeper queues them after its grace
            log.warning("enqueue of follow-up requests failed; the sweeper will queue them",
                        count=len(follow_ups), error=repr(error))
    now = time.time()
    for item in items:
        blockhash_height = item.attempt.last_valid_block_height - BLOCKHASH_VALID_BLOCKS
        metrics.record_confirmed(
            item.attempt.tx_type,
            now - item.request.created_at.timestamp(),
            landing_slots=max(0, height - blockhash_height),
        )
        if (paid := fees.fee_of(item.attempt.serialized_tx)) is not None:
            metrics.record_landed_fee(item.attempt.tx_type, *paid)


def still_as_read(read: LiveAttempt, locked: Locked, owner: str) -> bool:
    """Whether an attempt re-read under its lock is in the state a decision was made from,
    under the lease of the one acting on it. Otherwise someone else (another worker after
    the lease ran out, an operator) saw something newer: the row is decided again."""
    now = locked.attempt
    return locked.lease_owner == owner and (
        now.status, now.attempt, now.expiry_check_pending, now.tx_signature,
        now.last_valid_block_height,
    ) == (
        read.status, read.attempt, read.expiry_check_pending, read.tx_signature,
        read.last_valid_block_height,
    )


async def settle(
    ctx: PipelineContext, row: LiveAttempt, action: Action, height: int, *,
    owner: str | None = None,
) -> None:
    """Apply a final decision for one attempt, in one tenant transaction (then send, if new).

    `row` is the attempt as the decision read it and `height` the block height it was made
    at (a replacement outlives it). The row is re-read under its lock and the decision is
    carried out only if it is still in that state and leased by `owner` (the worker by
    default; reconcile passes its own lease).
    """
    if isinstance(action, decide.Confirm):
        # Landed at the target commitment: right whatever happened meanwhile, as long as
        # the attempt is live. The batch path takes its own locks.
        await settle_landed(ctx, row.tenant_id, [(row, action.slot)], height)
        return
    owner = owner or ctx.worker_id
    resend: tuple[bytes, str] | None = None
    reason = f"{row.tx_type} {action.kind}"
    async with tenant_transaction(ctx.pool, row.tenant_id, reason=reason) as conn:
        locked = await live_transactions.lock_live(conn, row.id)
        request = await requests.get_request(conn, row.request_id, lock=True)
        if locked is None or request is None:
            return  # settled meanwhile by another worker or an operator
        if not still_as_read(row, locked, owner):
            log.info("attempt changed since it was read; it is decided again",
                     action=action.kind, lease_owner=locked.lease_owner)
            return
        ended = apply_action(snapshot(row), action, time.time())  # what the attempt becomes
        match action:
            case decide.Fail(code=code, message=message, slot=slot):
                await live_transactions.fail(conn, row.tx_signature, code, message, slot)
                await _count_fees(conn, [row])
                holder = await _adoptable(ctx, row, code)
                earlier = None if holder is not None else await _landed_before(
                    ctx, conn, row, request
                )
                if holder is not None:
                    landed = outcomes.Landed(row, request, slot, holder, adopted=True)
                    await outcomes.confirmed(ctx, conn, [landed])
                    metrics.record_confirmed(
                        row.tx_type, time.time() - request.created_at.timestamp()
                    )
                elif earlier is not None:
                    # An attempt this one replaced landed after all (a replay of it then
                    # fails for lack of balance): the request is done, by that attempt.
                    first, first_slot = earlier
                    log.warning("an earlier attempt landed after all; adopting it",
                                adopted=first.tx_signature)
                    await live_transactions.confirm_replaced(conn, first.id, first_slot)
                    landed = outcomes.Landed(
                        row, request, first_slot, first.destination, adopted=True,
                        signature=first.tx_signature,
                    )
                    await outcomes.confirmed(ctx, conn, [landed])
                    metrics.record_confirmed(
                        row.tx_type, time.time() - request.created_at.timestamp()
                    )
                elif ctx.policy.retries_left(row.attempt) and await _prefunded(ctx, row, code):
                    # Someone funded the mint address once it was public; the next
                    # attempt takes the account over (the mint key signs for it).
                    log.warning("mint address was funded by someone else; taking it over")
                    metrics.TX_RETRIES.labels(op=row.tx_type).inc()
                    resend = await _next_attempt(ctx, conn, request, row, row.attempt + 1, height)
                else:
                    await outcomes.failed(conn, request, row.tx_signature, code, message)
                    metrics.record_failed(row.tx_type, failure_reason(code))
            case decide.Replace(next_attempt=attempt):
                await live_transactions.finish(conn, row.id, ended.status)
                metrics.TX_RETRIES.labels(op=row.tx_type).inc()
                resend = await _next_attempt(ctx, conn, request, row, attempt, height)
            case decide.Expire():
                await live_transactions.finish(conn, row.id, ended.status)
                await outcomes.expired(conn, row, request)
                metrics.TX_EXPIRED.labels(op=row.tx_type).inc()
    if resend is not None:
        await send(ctx, *resend)
        metrics.TX_SUBMITTED.labels(op=row.tx_type).inc()


async def _next_attempt(
    ctx: PipelineContext,
    conn: Connection,
    request: RequestRow,
    row: LiveAttempt,
    attempt: int,
    height: int,
) -> tuple[bytes, str] | None:
    """Record attempt `attempt` after `row` ended; the bytes to send, or None if refused."""
    async with conn.transaction():  # a savepoint: a refusal leaves nothing of the attempt
        prepared = (await prepare_attempts(
            ctx, conn, [request], {request.id: AttemptOf(attempt, parent_tx_id=row.id)},
            seen_height=height,
        ))[request.id]
    if isinstance(prepared, Busy):
        # Another process recorded a live transaction for the ticket meanwhile.
        raise TicketBusy(f"ticket {request.ticket_id} has another live transaction")
    if not isinstance(prepared, Prepared):
        await outcomes.refuse(conn, request, prepared.code, prepared.message)
        return None
    return prepared.raw, prepared.signature


async def _landed_before(
    ctx: PipelineContext, conn: Connection, row: LiveAttempt, request: RequestRow
) -> tuple[AttemptRow, int] | None:
    """A replaced attempt of the same transfer or burn that landed without error at the
    target commitment, and its slot; None when none did (or this is the first attempt)."""
    if row.tx_type == TxOp.MINT or row.attempt == 1:
        return None  # a mint's earlier attempt is found by its mint account (_adoptable)
    earlier = [
        a for a in await transactions.attempts_for_request(conn, request.id)
        if a.attempt < row.attempt and a.status == TxStatus.REPLACED
    ]
    if not earlier:
        return None
    statuses = await ctx.rpc.signature_statuses([a.tx_signature for a in earlier])
    for attempt, seen in zip(earlier, statuses, strict=True):
        landed = observed(seen)
        if landed is not None and landed.confirmation_status >= ctx.policy.target and (
            not landed.failed
        ):
            return attempt, landed.slot
    return None


async def _prefunded(ctx: PipelineContext, row: LiveAttempt, code: str) -> bool:
    """A mint that failed because its address holds only lamports someone sent there."""
    if row.tx_type is not TxOp.MINT or custom_program_error(code) != ALREADY_IN_USE:
        return False
    return await prefunded_mint_lamports(ctx, row.tenant_id, row.ticket_id) > 0


async def _count_fees(conn: Connection, rows: list[LiveAttempt]) -> None:
    """Count what landed attempts were charged (fees, and rent when they succeeded): the
    status change charged the tenant (a trigger), and released what they reserved."""
    by_op: dict[str, list[UUID]] = defaultdict(list)
    for row in rows:
        by_op[row.tx_type].append(row.id)
    for op, ids in by_op.items():
        metrics.FEES_LAMPORTS.labels(op=op).inc(await audit.charged_lamports(conn, ids))


async def _adoptable(ctx: PipelineContext, row: LiveAttempt, code: str) -> str | None:
    """A mint that failed because the mint exists: when it is this ticket's, the wallet that
    holds it (an earlier attempt made it, perhaps for an older wallet); else None."""
    if row.tx_type is not TxOp.MINT or custom_program_error(code) != ALREADY_IN_USE:
        return None
    mint: Pubkey = ctx.keys.mint_address(row.tenant_id, row.ticket_id)
    try:
        state = await ctx.rpc.get_mint_state(mint)
        if state is None or state.supply != 1 or state.metadata is None:
            return None
        if state.metadata.field("ticket_id") != str(row.ticket_id):
            return None
        holder = await ctx.rpc.get_token_holder(mint)
    except ChainError as error:
        if error.kind == UNEXPECTED_ACCOUNT:
            return None  # something else occupies the address: not ours to adopt
        raise  # could not read it now: the row stays live and is decided again
    return str(holder[0]) if holder is not None else None
