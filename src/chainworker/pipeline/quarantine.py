"""One bad row never stops the line: rows that cannot be handled are set aside with their reason.

`each_or_alone` runs a batch of live attempts through one step of the confirmation loop.
When the batch fails for a reason of its own (not a lost connection, a lock timeout or an
RPC outage: those are tried again next round as they are), each row is run alone, and a
row that still fails alone is quarantined: its status stays live, `quarantined_at` and
`last_error` say why, `chainworker_quarantined_total` counts it, and the loop claims it no
more. The other rows of the batch go on in the same round.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar
from uuid import UUID

from chainworker.db import live_transactions
from chainworker.db.live_transactions import LiveAttempt
from chainworker.db.pool import tenant_transaction
from chainworker.lifecycle.model import QuarantineReason
from chainworker.obs import logs, metrics
from chainworker.pipeline.context import PipelineContext
from chainworker.pipeline.errors import not_the_rows_fault

T = TypeVar("T")

log = logs.get_logger(__name__)


async def set_aside(
    ctx: PipelineContext,
    rows: Sequence[tuple[UUID, UUID, str]],
    reason: QuarantineReason,
) -> None:
    """Quarantine live attempts (tenant, attempt id, why), each tenant in its own transaction."""
    by_tenant: dict[UUID, list[tuple[UUID, str]]] = defaultdict(list)
    for tenant_id, tx_id, problem in rows:
        by_tenant[tenant_id].append((tx_id, problem))
    for tenant_id, items in by_tenant.items():
        async with tenant_transaction(
            ctx.pool, tenant_id, actor_type="system", reason="quarantined", source="chainworker"
        ) as conn:
            await live_transactions.quarantine(conn, items)
        for tx_id, problem in items:
            metrics.QUARANTINED.labels(kind="transaction", reason=reason).inc()
            log.error("transaction set aside", tenant_id=str(tenant_id), tx_id=str(tx_id),
                      reason=reason.value, problem=problem[:300])


async def each_or_alone(
    ctx: PipelineContext,
    items: Sequence[T],
    run: Callable[[Sequence[T]], Awaitable[None]],
    row_of: Callable[[T], LiveAttempt],
    step: str,
) -> None:
    """Run `items` together; on a failure of their own, each alone; quarantine what fails alone."""
    try:
        await run(items)
        return
    except Exception as error:
        if not_the_rows_fault(error):
            log.warning(f"{step} failed; will retry", count=len(items), error=str(error))
            return
        if len(items) > 1:
            log.warning(f"{step} failed for the batch; trying each alone", count=len(items),
                        error=f"{type(error).__name__}: {error}")
        else:
            await _fail_alone(ctx, row_of(items[0]), step, error)
            return
    for item in items:
        try:
            await run([item])
        except Exception as error:
            if not_the_rows_fault(error):
                log.warning(f"{step} failed; will retry", error=str(error))
                continue
            await _fail_alone(ctx, row_of(item), step, error)


async def _fail_alone(ctx: PipelineContext, row: LiveAttempt, step: str, error: Exception) -> None:
    problem = f"{step}: {type(error).__name__}: {error}"
    try:
        await set_aside(ctx, [(row.tenant_id, row.id, problem)], QuarantineReason.UNHANDLED)
    except Exception as failure:  # could not even set it aside: it is tried again next round
        log.error("could not set a transaction aside", tx_id=str(row.id), error=repr(failure),
                  problem=problem[:300])
