"""The confirmation loop: claim live attempts, read the chain, act on each decision.

Rows are claimed under a lease (`FOR UPDATE SKIP LOCKED` in the one cross-tenant
function), so several workers share the work without duplicating it, and a dead
worker's rows pass to another once its lease runs out. Decisions come from
`lifecycle.next_action`; this module only carries them out.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Awaitable, Sequence
from datetime import datetime
from functools import partial
from typing import Any
from uuid import UUID

from solders.pubkey import Pubkey

from chainworker.chain.errors import UNEXPECTED_ACCOUNT, ChainError
from chainworker.chain.views import SignatureStatusView
from chainworker.db import audit, requests, transactions
from chainworker.db.pool import Connection, tenant_transaction
from chainworker.db.requests import RequestRow
from chainworker.db.transactions import AttemptRow, LiveAttempt, Locked, PoisonRow
from chainworker.jobs import outcomes
from chainworker.jobs.context import WorkerContext
from chainworker.jobs.prepare import Refused, prefunded_mint_lamports, prepare_attempt
from chainworker.jobs.quarantine import each_or_alone, not_the_rows_fault, set_aside
from chainworker.jobs.submit import send
from chainworker.lifecycle import decide
from chainworker.lifecycle.decide import Action
from chainworker.lifecycle.model import (
    ObservedStatus,
    QuarantineReason,
    TxOp,
    TxSnapshot,
    TxStatus,
)
from chainworker.lifecycle.observe import custom_program_error, failure_reason, observed_status
from chainworker.obs import logs, metrics

CLAIM_LIMIT = 2048
LEASE_SECONDS = 15
# Outcome transactions in flight at once; keeps a share of the pool for the jobs.
OUTCOME_CONCURRENCY = 8
ALREADY_IN_USE = 0  # Custom error of a second CreateAccount for the same mint
BLOCKHASH_VALID_BLOCKS = 150

log = logs.get_logger(__name__)


def _epoch(moment: datetime | None) -> float | None:
    return moment.timestamp() if moment is not None else None


def observed(view: SignatureStatusView | None) -> ObservedStatus | None:
    if view is None:
        return None
    return observed_status(
        view.slot, view.confirmation_status, view.confirmations,
        view.err.code if view.err else None, view.err.message if view.err else None,
    )


def snapshot(row: LiveAttempt) -> TxSnapshot:
    return TxSnapshot(
        status=TxStatus(row.status),
        attempt=row.attempt,
        last_valid_block_height=row.last_valid_block_height,
        last_sent_at=_epoch(row.last_sent_at),
        last_rebroadcast_at=_epoch(row.last_rebroadcast_at),
        expiry_check_pending=row.expiry_check_pending,
    )


async def run_forever(ctx: WorkerContext) -> None:
    interval = ctx.settings.confirm_interval_seconds
    while True:
        started = time.monotonic()
        try:
            handled = await run_once(ctx)
        except asyncio.CancelledError:
            raise
        except Exception as error:  # the loop must outlive any one bad round
            if not_the_rows_fault(error):  # the database or RPC is away: said once, briefly
                log.warning("confirmation round failed; will retry", error=str(error))
            else:
                log.exception("confirmation round failed", error=str(error))
            handled = 0
        metrics.JOB_SECONDS.labels(job="confirm_round").observe(time.monotonic() - started)
        if handled < CLAIM_LIMIT:
            await asyncio.sleep(max(0.0, interval - (time.monotonic() - started)))


async def run_once(ctx: WorkerContext) -> int:
    """One round over the live attempts this worker holds. Returns how many it looked at."""
    async with ctx.pool.acquire() as conn:
        claimed = await transactions.claim_live(conn, ctx.worker_id, CLAIM_LIMIT, LEASE_SECONDS)
    rows = [row for row in claimed if isinstance(row, LiveAttempt)]
    poison = [row for row in claimed if isinstance(row, PoisonRow)]
    if poison:
        await set_aside(
            ctx, [(p.tenant_id, p.id, p.problem) for p in poison], QuarantineReason.BAD_ROW
        )
    if not rows:
        return len(claimed)
    try:
        # One endpoint's view: its height first, then the statuses (see SolanaRpc.read_chain).
        read = await ctx.rpc.read_chain(
            [row.tx_signature for row in rows], ctx.settings.commitment
        )
    except ChainError as error:
        log.warning("status read failed; will retry", error=str(error))
        return len(claimed)
    metrics.BLOCK_HEIGHT.set(read.height)
    now = time.time()
    decisions = [
        (row, decide.next_action(snapshot(row), observed(seen), read.height, now, ctx.policy))
        for row, seen in zip(rows, read.statuses, strict=True)
    ]
    await _carry_out(ctx, decisions, read.height)
    return len(claimed)


def _row(item: tuple[LiveAttempt, Any]) -> LiveAttempt:
    return item[0]


async def _carry_out(
    ctx: WorkerContext, decisions: Sequence[tuple[LiveAttempt, Action]], height: int
) -> None:
    """Each step per tenant, each apart from the others: one bad row never stops the round."""
    rebroadcast: list[LiveAttempt] = []
    marks: dict[UUID, list[tuple[LiveAttempt, Action]]] = defaultdict(list)
    landed: dict[UUID, list[tuple[LiveAttempt, int]]] = defaultdict(list)
    finals: list[tuple[LiveAttempt, Action]] = []
    for row, action in decisions:
        match action:
            case decide.Rebroadcast():
                rebroadcast.append(row)
            case decide.MarkConfirming() | decide.RecheckExpiry():
                marks[row.tenant_id].append((row, action))
            case decide.Confirm(slot=slot):
                landed[row.tenant_id].append((row, slot))
            case decide.Fail() | decide.Replace() | decide.Expire():
                finals.append((row, action))
    if rebroadcast:
        await _rebroadcast(ctx, rebroadcast)
    for tenant_id, items in marks.items():
        await each_or_alone(ctx, items, partial(_mark, ctx, tenant_id), _row, "marking observed")
    gate = asyncio.Semaphore(OUTCOME_CONCURRENCY)

    async def gated(job: Awaitable[None]) -> None:
        async with gate:
            await job

    jobs: list[Awaitable[None]] = [
        each_or_alone(
            ctx, items, partial(_settle_landed, ctx, tenant_id, height), _row,
            "applying confirmations",
        )
        for tenant_id, items in landed.items()
    ]
    jobs += [
        each_or_alone(
            ctx, [(row, action)], partial(_settle_one, ctx, height), _row,
            f"applying {action.kind}",
        )
        for row, action in finals
    ]
    await asyncio.gather(*(gated(job) for job in jobs))


async def _settle_landed(
    ctx: WorkerContext, tenant_id: UUID, height: int, items: Sequence[tuple[LiveAttempt, int]]
) -> None:
    await settle_landed(ctx, tenant_id, list(items), height)


async def _settle_one(
    ctx: WorkerContext, height: int, items: Sequence[tuple[LiveAttempt, Action]]
) -> None:
    for row, action in items:
        with logs.log_context(
            tenant_id=row.tenant_id, request_id=row.request_id, ticket_id=row.ticket_id,
            signature=row.tx_signature, attempt=row.attempt,
        ):
            await settle(ctx, row, action, height)


async def _mark(
    ctx: WorkerContext, tenant_id: UUID, items: Sequence[tuple[LiveAttempt, Action]]
) -> None:
    seen = [(row.id, a.slot) for row, a in items if isinstance(a, decide.MarkConfirming)]
    unseen = [(row.id, row.status) for row, a in items if not isinstance(a, decide.MarkConfirming)]
    async with tenant_transaction(ctx.pool, tenant_id, reason="status observed") as conn:
        if seen:
            await transactions.mark_confirming(conn, ctx.worker_id, seen)
        if unseen:
            await transactions.mark_expiry_check(conn, ctx.worker_id, unseen)


async def _rebroadcast(ctx: WorkerContext, rows: list[LiveAttempt]) -> None:
    try:
        outcomes = await ctx.rpc.send_raw_many([row.serialized_tx for row in rows])
    except ChainError as error:
        log.warning("rebroadcast failed; will retry", count=len(rows), error=str(error))
        return
    refused = sum(outcome is not None for outcome in outcomes)
    if refused:
        log.info("rebroadcast refused by every endpoint", count=refused)
    metrics.TX_REBROADCASTS.inc(len(rows))
    by_tenant: dict[UUID, list[UUID]] = defaultdict(list)
    for row in rows:
        by_tenant[row.tenant_id].append(row.id)
    for tenant_id, ids in by_tenant.items():
        try:
            async with tenant_transaction(ctx.pool, tenant_id, reason="rebroadcast") as conn:
                await transactions.mark_rebroadcast(conn, ctx.worker_id, ids)
        except Exception as error:  # only bookkeeping: the next rebroadcast is merely sooner
            log.warning("could not note a rebroadcast", count=len(ids), error=repr(error))


async def settle_landed(
    ctx: WorkerContext, tenant_id: UUID, rows: list[tuple[LiveAttempt, int]], height: int
) -> None:
    """Confirm landed attempts of one tenant and apply their outcomes, in one transaction.

    `height` is the block height read with their statuses: how many blocks after its
    blockhash each landed is what `chainworker_tx_landing_slots` shows (a blockhash is
    good for 150).
    """
    reason = "chain transaction confirmed"
    async with tenant_transaction(ctx.pool, tenant_id, reason=reason) as conn:
        live = await transactions.lock_live_many(conn, [row.id for row, _ in rows])
        still = [(row, slot) for row, slot in rows if row.id in live]
        if not still:
            return
        found = await requests.get_requests(conn, sorted({row.request_id for row, _ in still}))
        items = [
            outcomes.Landed(row, found[row.request_id], slot, live[row.id])
            for row, slot in still
            if row.request_id in found
        ]
        await transactions.confirm_many(conn, [(i.attempt.tx_signature, i.slot) for i in items])
        await _count_fees(conn, [i.attempt for i in items])
        await outcomes.confirmed(ctx, conn, items)
    now = time.time()
    for item in items:
        blockhash_height = item.attempt.last_valid_block_height - BLOCKHASH_VALID_BLOCKS
        metrics.record_confirmed(
            item.attempt.tx_type,
            now - item.request.created_at.timestamp(),
            landing_slots=max(0, height - blockhash_height),
        )


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
    ctx: WorkerContext, row: LiveAttempt, action: Action, height: int, *,
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
        locked = await transactions.lock_live(conn, row.id)
        request = await requests.get_request(conn, row.request_id, lock=True)
        if locked is None or request is None:
            return  # settled meanwhile by another worker or an operator
        if not still_as_read(row, locked, owner):
            log.info("attempt changed since it was read; it is decided again",
                     action=action.kind, lease_owner=locked.lease_owner)
            return
        match action:
            case decide.Fail(code=code, message=message, slot=slot):
                await transactions.fail(conn, row.tx_signature, code, message)
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
                    await transactions.confirm_replaced(conn, first.id, first_slot)
                    landed = outcomes.Landed(
                        row, request, first_slot, first.destination, adopted=True,
                        signature=first.tx_signature,
                    )
                    await outcomes.confirmed(ctx, conn, [landed])
                    metrics.record_confirmed(
                        row.tx_type, time.time() - request.created_at.timestamp()
                    )
                elif row.attempt <= ctx.policy.max_retries and await _prefunded(ctx, row, code):
                    # Someone funded the mint address once it was public; the next
                    # attempt takes the account over (the mint key signs for it).
                    log.warning("mint address was funded by someone else; taking it over")
                    metrics.TX_RETRIES.labels(op=row.tx_type).inc()
                    resend = await _next_attempt(ctx, conn, request, row, row.attempt + 1, height)
                else:
                    await outcomes.failed(conn, request, row.tx_signature, code, message)
                    metrics.record_failed(row.tx_type, failure_reason(code))
            case decide.Replace(next_attempt=attempt):
                await transactions.finish(conn, row.id, "replaced")
                metrics.TX_RETRIES.labels(op=row.tx_type).inc()
                resend = await _next_attempt(ctx, conn, request, row, attempt, height)
            case decide.Expire():
                await outcomes.expired(conn, row, request)
                metrics.TX_EXPIRED.labels(op=row.tx_type).inc()
    if resend is not None:
        await send(ctx, *resend)
        metrics.TX_SUBMITTED.labels(op=row.tx_type).inc()


async def _next_attempt(
    ctx: WorkerContext,
    conn: Connection,
    request: RequestRow,
    row: LiveAttempt,
    attempt: int,
    height: int,
) -> tuple[bytes, str] | None:
    """Record attempt `attempt` after `row` ended; the bytes to send, or None if refused."""
    try:
        async with conn.transaction():
            prepared = await prepare_attempt(
                ctx, conn, request, attempt=attempt, parent_tx_id=row.id,
                job_id=None, seen_height=height,
            )
    except Refused as refusal:
        await outcomes.refuse(conn, request, refusal.code, refusal.message)
        return None
    await requests.mark_submitted(conn, [(request.id, prepared.signature, attempt)])
    return prepared.raw, prepared.signature


async def _landed_before(
    ctx: WorkerContext, conn: Connection, row: LiveAttempt, request: RequestRow
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


async def _prefunded(ctx: WorkerContext, row: LiveAttempt, code: str) -> bool:
    """A mint that failed because its address holds only lamports someone sent there."""
    if row.tx_type != "mint" or custom_program_error(code) != ALREADY_IN_USE:
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


async def _adoptable(ctx: WorkerContext, row: LiveAttempt, code: str) -> str | None:
    """A mint that failed because the mint exists: when it is this ticket's, the wallet that
    holds it (an earlier attempt made it, perhaps for an older wallet); else None."""
    if row.tx_type != "mint" or custom_program_error(code) != ALREADY_IN_USE:
        return None
    mint: Pubkey = ctx.mint_address(row.tenant_id, row.ticket_id)
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
