"""The confirmation round: claim live attempts, read the chain, act on each decision.

Rows are claimed under a lease (`FOR UPDATE SKIP LOCKED` in the one cross-tenant
function), so several workers share the work without duplicating it, and a dead
worker's rows pass to another once its lease runs out. Decisions come from
`lifecycle.decide.next_action`; `settle.py` carries out the final ones.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Awaitable, Sequence
from functools import partial
from typing import Any
from uuid import UUID

from chainworker.chain.errors import ChainError
from chainworker.db import live_transactions
from chainworker.db.live_transactions import LiveAttempt, PoisonRow
from chainworker.db.pool import tenant_transaction
from chainworker.lifecycle import decide
from chainworker.lifecycle.decide import Action
from chainworker.lifecycle.model import QuarantineReason
from chainworker.lifecycle.transitions import apply_action
from chainworker.obs import logs, metrics
from chainworker.pipeline.context import JobQueue, PipelineContext
from chainworker.pipeline.quarantine import each_or_alone, set_aside
from chainworker.pipeline.settle import observed, settle, settle_landed, snapshot

CLAIM_LIMIT = 2048
LEASE_SECONDS = 15
# Outcome transactions in flight at once; keeps a share of the pool for the jobs.
OUTCOME_CONCURRENCY = 8
# Landed attempts of one tenant settled per transaction: a round's thousands, as one
# transaction, were one backend's work while the other waited, and nothing was confirmed
# until the last of them was.
SETTLE_CHUNK = 256

log = logs.get_logger(__name__)


async def run_once(ctx: PipelineContext, queue: JobQueue | None = None) -> int:
    """One round over the live attempts this worker holds. Returns how many it looked at.

    `queue` takes the requests outcomes record (a new mint's verify) once committed."""
    async with ctx.pool.acquire() as conn:
        claimed = await live_transactions.claim_live(
            conn, ctx.worker_id, CLAIM_LIMIT, LEASE_SECONDS
        )
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
    await _carry_out(ctx, decisions, read.height, queue)
    return len(claimed)


def _chunks(items: list[Any], size: int) -> list[list[Any]]:
    return [items[at : at + size] for at in range(0, len(items), size)]


def _row(item: tuple[LiveAttempt, Any]) -> LiveAttempt:
    return item[0]


async def _carry_out(
    ctx: PipelineContext, decisions: Sequence[tuple[LiveAttempt, Action]], height: int,
    queue: JobQueue | None = None,
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
            ctx, chunk, partial(_settle_landed, ctx, tenant_id, height, queue), _row,
            "applying confirmations",
        )
        for tenant_id, items in landed.items()
        for chunk in _chunks(items, SETTLE_CHUNK)
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
    ctx: PipelineContext, tenant_id: UUID, height: int, queue: JobQueue | None,
    items: Sequence[tuple[LiveAttempt, int]],
) -> None:
    await settle_landed(ctx, tenant_id, list(items), height, queue)


async def _settle_one(
    ctx: PipelineContext, height: int, items: Sequence[tuple[LiveAttempt, Action]]
) -> None:
    for row, action in items:
        with logs.log_context(
            tenant_id=row.tenant_id, request_id=row.request_id, ticket_id=row.ticket_id,
            signature=row.tx_signature, attempt=row.attempt,
        ):
            await settle(ctx, row, action, height)


async def _mark(
    ctx: PipelineContext, tenant_id: UUID, items: Sequence[tuple[LiveAttempt, Action]]
) -> None:
    """Write what the reads changed, as the lifecycle's transitions say."""
    now = time.time()
    observed = []
    for row, action in items:
        read = snapshot(row)
        slot = action.slot if isinstance(action, decide.MarkConfirming) else None
        after = apply_action(read, action, now)
        observed.append(live_transactions.Observed(row.id, read, after, slot))
    async with tenant_transaction(ctx.pool, tenant_id, reason="status observed") as conn:
        await live_transactions.record_observations(conn, ctx.worker_id, observed)


async def _rebroadcast(ctx: PipelineContext, rows: list[LiveAttempt]) -> None:
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
                await live_transactions.mark_rebroadcast(conn, ctx.worker_id, ids)
        except Exception as error:  # only bookkeeping: the next rebroadcast is merely sooner
            log.warning("could not note a rebroadcast", count=len(ids), error=repr(error))


