"""Reconcile stuck transactions: find old live attempts, read the chain, classify, settle.

The verdicts come from `lifecycle.outcome.reconcile` (which replays `next_action`),
and `--apply` goes through `pipeline.settle.settle`, the same path the confirmation loop
uses: this module only streams rows, reads statuses and hands decisions over.

Scale: rows are read in keyset pages through one narrow cross-tenant function, and
statuses in batches of 256 with a bounded number of calls in flight, so memory and
RPC load stay flat however many rows are live.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import asyncpg

from chainworker.chain.rpc import SolanaRpc
from chainworker.chain.views import SignatureStatusView
from chainworker.db import live_transactions
from chainworker.db import reconcile as db_reconcile
from chainworker.db.live_transactions import LiveAttempt, PoisonRow
from chainworker.db.pool import tenant_transaction
from chainworker.lifecycle.model import Commitment, Policy, QuarantineReason, TxOp
from chainworker.lifecycle.outcome import ReconcileDecision, ReconcileVerdict, reconcile
from chainworker.pipeline.confirm import LEASE_SECONDS
from chainworker.pipeline.context import PipelineContext
from chainworker.pipeline.quarantine import set_aside
from chainworker.pipeline.settle import observed, settle, snapshot

STATUS_BATCH = 256  # getSignatureStatuses takes at most 256 signatures a call
STATUS_CALLS_IN_FLIGHT = 8
PAGE_SIZE = 4096
PAGES_IN_FLIGHT = 3
TENANT_PAGE_SIZE = 1000
# Long enough for --apply to settle what it leased; a dead reconcile's rows pass back soon.
APPLY_LEASE_SECONDS = 4 * LEASE_SECONDS
APPLY_CONCURRENCY = 8
FINAL_VERDICTS = frozenset(
    {ReconcileVerdict.CONFIRM, ReconcileVerdict.FAIL, ReconcileVerdict.RETRY,
     ReconcileVerdict.EXPIRE}
)

@dataclass(frozen=True, slots=True)
class ScanOptions:
    older_than_seconds: float = 120.0
    tenant_id: UUID | None = None
    op: str | None = None
    limit: int | None = None
    page_size: int = PAGE_SIZE

    def __post_init__(self) -> None:
        if self.older_than_seconds < 0:
            raise ValueError("older_than_seconds must not be negative")
        if self.op is not None and self.op not in set(TxOp):
            raise ValueError(f"op must be one of {', '.join(TxOp)}, not {self.op!r}")
        if self.limit is not None and self.limit < 1:
            raise ValueError("limit must be at least 1")
        if self.page_size < 1:
            raise ValueError("page_size must be at least 1")


@dataclass(frozen=True, slots=True)
class Finding:
    """One live attempt, what the chain says about it, and the verdict."""

    row: LiveAttempt
    chain: SignatureStatusView | None  # the first read; None: signature unknown
    decision: ReconcileDecision
    age_seconds: float
    height: int = 0  # the block height read with the statuses (same endpoint, just before)
    applied: str | None = None  # the attempt's status after --apply settled it
    error: str | None = None  # why --apply could not settle it

    @property
    def verdict(self) -> ReconcileVerdict:
        return self.decision.verdict

    def as_json(self) -> dict[str, Any]:
        chain: dict[str, Any] | None = None
        if self.chain is not None:
            chain = {
                "slot": self.chain.slot,
                "confirmation_status": self.chain.confirmation_status,
                "err": None if self.chain.err is None else {
                    "code": self.chain.err.code, "message": self.chain.err.message,
                },
            }
        return {
            "tx_id": str(self.row.id),
            "tenant_id": str(self.row.tenant_id),
            "ticket_id": str(self.row.ticket_id),
            "request_id": str(self.row.request_id) if self.row.request_id else None,
            "op": self.row.tx_type,
            "signature": self.row.tx_signature,
            "status": self.row.status,
            "attempt": self.row.attempt,
            "age_seconds": round(self.age_seconds, 1),
            "last_valid_block_height": self.row.last_valid_block_height,
            "chain": chain,
            "verdict": self.verdict.value,
            "action": self.decision.action.kind,
            "applied": self.applied,
            "error": self.error,
        }


@dataclass
class ScanReport:
    block_height: int
    findings: list[Finding] = field(default_factory=list)
    # Rows that cannot be checked at all (not a signature, no request...): --apply sets
    # them aside, as the confirmation loop does.
    poison: list[PoisonRow] = field(default_factory=list)
    applied: bool = False
    seconds: float = 0.0

    @property
    def by_verdict(self) -> dict[str, int]:
        counts = Counter(f.verdict.value for f in self.findings)
        return {verdict.value: counts.get(verdict.value, 0) for verdict in ReconcileVerdict}

    @property
    def errors(self) -> int:
        return sum(1 for f in self.findings if f.error is not None)

    def summary(self) -> dict[str, Any]:
        return {
            "scanned": len(self.findings),
            "block_height": self.block_height,
            "by_verdict": self.by_verdict,
            "mode": "apply" if self.applied else "dry-run",
            "settled": sum(1 for f in self.findings if f.applied is not None),
            "poison": len(self.poison),
            "errors": self.errors,
            "seconds": round(self.seconds, 3),
        }

    def as_json(self) -> dict[str, Any]:
        return {
            "summary": self.summary(),
            "findings": [f.as_json() for f in self.findings],
            "poison": [
                {"tx_id": str(p.id), "tenant_id": str(p.tenant_id), "problem": p.problem}
                for p in self.poison
            ],
        }


async def tenants_to_scan(pool: asyncpg.Pool, only: UUID | None) -> AsyncIterator[UUID]:
    """The tenant asked for, or every tenant with requests or live transactions."""
    if only is not None:
        yield only
        return
    after: UUID | None = None
    while True:
        async with pool.acquire() as conn:
            page = await db_reconcile.tenant_ids(conn, after, TENANT_PAGE_SIZE)
        for tenant_id in page:
            yield tenant_id
        if len(page) < TENANT_PAGE_SIZE:
            return
        after = page[-1]


async def live_pages(
    pool: asyncpg.Pool, options: ScanOptions
) -> AsyncIterator[list[LiveAttempt | PoisonRow]]:
    """Live attempts older than the threshold, a page at a time: tenant by tenant, each read
    under its own context, oldest first within a tenant."""
    remaining = options.limit
    async for tenant_id in tenants_to_scan(pool, options.tenant_id):
        after: tuple[Any, UUID] | None = None
        while remaining is None or remaining > 0:
            size = options.page_size if remaining is None else min(options.page_size, remaining)
            async with tenant_transaction(pool, tenant_id, reason="reconcile scan") as conn:
                page = await db_reconcile.live_transactions(
                    conn, options.older_than_seconds, options.op, size,
                    after[0] if after else None, after[1] if after else None,
                )
            if page:
                yield page
            if remaining is not None:
                remaining -= len(page)
            if len(page) < size:
                break
            after = db_reconcile.page_end(page)
        if remaining is not None and remaining <= 0:
            return


async def read_statuses(
    rpc: SolanaRpc, signatures: Sequence[str], gate: asyncio.Semaphore, commitment: Commitment
) -> list[tuple[int, SignatureStatusView | None]]:
    """(block height, status) in input order, 256 a call, at most the gate's calls in flight.

    Each call is one endpoint's view (`SolanaRpc.read_chain`): the height that judges a
    row's expiry and the row's status come from the same node, the height read first.
    """

    async def batch(part: Sequence[str]) -> list[tuple[int, SignatureStatusView | None]]:
        async with gate:
            read = await rpc.read_chain(part, commitment)
        return [(read.height, status) for status in read.statuses]

    parts = [signatures[i : i + STATUS_BATCH] for i in range(0, len(signatures), STATUS_BATCH)]
    results = await asyncio.gather(*(batch(part) for part in parts))
    return [found for part in results for found in part]


async def classify(
    rpc: SolanaRpc,
    rows: Sequence[LiveAttempt],
    commitment: Commitment,
    now: float,
    policy: Policy,
    gate: asyncio.Semaphore,
) -> list[Finding]:
    """Read the rows' statuses and decide; rows that look expired are read a second time."""
    first = await read_statuses(rpc, [row.tx_signature for row in rows], gate, commitment)
    decisions = [
        reconcile(snapshot(row), [observed(seen)], height, now, policy)
        for row, (height, seen) in zip(rows, first, strict=True)
    ]
    recheck = [i for i, d in enumerate(decisions) if d.verdict is ReconcileVerdict.RECHECK]
    if recheck:
        # Expiry needs the signature unknown twice with the height past: read again. The
        # first read's height judges both: it was read before either status.
        second = await read_statuses(
            rpc, [rows[i].tx_signature for i in recheck], gate, commitment
        )
        for i, (_, seen) in zip(recheck, second, strict=True):
            height = first[i][0]
            decisions[i] = reconcile(
                snapshot(rows[i]), [observed(first[i][1]), observed(seen)], height, now, policy
            )
    return [
        Finding(row, seen, decision, max(0.0, now - row.submitted_at.timestamp()), height)
        for row, (height, seen), decision in zip(rows, first, decisions, strict=True)
    ]


async def scan(
    pool: asyncpg.Pool,
    rpc: SolanaRpc,
    policy: Policy,
    options: ScanOptions,
    *,
    commitment: Commitment,
    on_progress: Callable[[int], None] | None = None,
) -> ScanReport:
    """Classify every live attempt the options select. Changes nothing.

    Each batch of statuses is judged against the block height its endpoint reported just
    before them; rows that cannot be checked at all are reported apart (`poison`).
    """
    started = time.perf_counter()
    now = time.time()
    report = ScanReport(block_height=await rpc.block_height(commitment))
    gate = asyncio.Semaphore(STATUS_CALLS_IN_FLIGHT)
    in_flight: list[asyncio.Task[list[Finding]]] = []

    async def collect(task: asyncio.Task[list[Finding]]) -> None:
        found = await task
        report.findings.extend(found)
        report.block_height = max([report.block_height, *(f.height for f in found)])
        if on_progress is not None:
            on_progress(len(found))

    try:
        async for page in live_pages(pool, options):
            rows = [row for row in page if isinstance(row, LiveAttempt)]
            report.poison += [row for row in page if isinstance(row, PoisonRow)]
            in_flight.append(
                asyncio.create_task(classify(rpc, rows, commitment, now, policy, gate))
            )
            if len(in_flight) >= PAGES_IN_FLIGHT:
                await collect(in_flight.pop(0))
        while in_flight:
            await collect(in_flight.pop(0))
    finally:
        for task in in_flight:
            task.cancel()
    report.seconds = time.perf_counter() - started
    return report


async def apply(ctx: PipelineContext, report: ScanReport) -> ScanReport:
    """Settle every final verdict through `pipeline.settle.settle`; record what each became.

    Reconcile takes the confirmation loop's lease on each row first, so the two never act
    on one row at once: a row a worker holds is left to it (and reported), and a row that
    changed since the scan read it is decided again by whoever holds it next. Poison rows
    are set aside, as the loop sets them aside.
    """
    if report.poison:
        await set_aside(
            ctx, [(p.tenant_id, p.id, p.problem) for p in report.poison],
            QuarantineReason.BAD_ROW,
        )
    owner = f"reconcile:{ctx.worker_id}"
    final = [f for f in report.findings if f.verdict in FINAL_VERDICTS]
    leased = await _take_leases(ctx.pool, owner, [f.row for f in final])
    gate = asyncio.Semaphore(APPLY_CONCURRENCY)
    errors: dict[UUID, str] = {
        f.row.id: "leased by a worker, which settles it; run again if it stays" for f in final
        if f.row.id not in leased
    }

    async def one(finding: Finding) -> None:
        async with gate:
            try:
                await settle(
                    ctx, finding.row, finding.decision.action, finding.height, owner=owner
                )
            except Exception as error:  # one bad row must not stop the others
                errors[finding.row.id] = f"{type(error).__name__}: {error}"

    try:
        await asyncio.gather(*(one(f) for f in final if f.row.id in leased))
    finally:
        await _release_leases(ctx.pool, owner, [f.row for f in final if f.row.id in leased])
    statuses = await _statuses_after(ctx.pool, [f.row for f in final])
    settled = {f.row.id for f in final}
    report.findings = [
        _with_outcome(f, statuses.get(f.row.id), errors.get(f.row.id))
        if f.row.id in settled else f
        for f in report.findings
    ]
    report.applied = True
    return report


def _with_outcome(finding: Finding, status: str | None, error: str | None) -> Finding:
    still_live = status in (None, "pending", "confirming")
    return Finding(
        finding.row, finding.chain, finding.decision, finding.age_seconds,
        applied=None if still_live else status,
        error=error or (f"still {status} after settling" if still_live else None),
    )


def _by_tenant(rows: Sequence[LiveAttempt]) -> dict[UUID, list[UUID]]:
    by_tenant: dict[UUID, list[UUID]] = defaultdict(list)
    for row in rows:
        by_tenant[row.tenant_id].append(row.id)
    return by_tenant


async def _take_leases(pool: asyncpg.Pool, owner: str, rows: Sequence[LiveAttempt]) -> set[UUID]:
    leased: set[UUID] = set()
    for tenant_id, ids in _by_tenant(rows).items():
        async with tenant_transaction(pool, tenant_id, reason="reconcile") as conn:
            leased |= await live_transactions.take_leases(conn, owner, ids, APPLY_LEASE_SECONDS)
    return leased


async def _release_leases(pool: asyncpg.Pool, owner: str, rows: Sequence[LiveAttempt]) -> None:
    for tenant_id, ids in _by_tenant(rows).items():
        async with tenant_transaction(pool, tenant_id, reason="reconcile") as conn:
            await live_transactions.release_leases(conn, owner, ids)


async def _statuses_after(pool: asyncpg.Pool, rows: Sequence[LiveAttempt]) -> dict[UUID, str]:
    by_tenant: dict[UUID, list[UUID]] = defaultdict(list)
    for row in rows:
        by_tenant[row.tenant_id].append(row.id)
    statuses: dict[UUID, str] = {}
    for tenant_id, ids in by_tenant.items():
        async with tenant_transaction(pool, tenant_id, reason="reconcile") as conn:
            statuses.update(await db_reconcile.attempt_statuses(conn, ids))
    return statuses
