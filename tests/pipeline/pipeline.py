"""The pipeline in this process, for tests that drive single confirmation rounds by hand.

A real PipelineContext (real PostgreSQL, the localnet's real RPC), requests recorded and
signed through the worker's own group commit, sent, and waited for on chain.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from uuid import UUID

import asyncpg
from solders.message import MessageV0
from solders.pubkey import Pubkey

from chainworker.chain.rpc import SolanaRpc
from chainworker.db import requests as request_rows
from chainworker.db import seed as seed_data
from chainworker.db.pool import tenant_transaction
from chainworker.db.requests import NewRequest
from chainworker.jobs.worker import fund_authority
from chainworker.lifecycle.model import TxOp
from chainworker.pipeline.context import PipelineContext
from chainworker.pipeline.prepare import Prepared
from chainworker.pipeline.record import Job, Submitted, record_jobs


async def funded(ctx: PipelineContext) -> PipelineContext:
    await fund_authority(ctx)
    return ctx


async def submitted_mints(
    ctx: PipelineContext, owner: asyncpg.Connection, count: int
) -> tuple[UUID, list[Prepared]]:
    """A new tenant with `count` mints recorded, signed and sent (not yet landed)."""
    seeded = await seed_data.seed_tenant(owner, tickets=count)
    async with tenant_transaction(ctx.pool, seeded.tenant_id) as conn:
        recorded = await request_rows.record_requests(
            conn, seeded.tenant_id, TxOp.MINT,
            [NewRequest(t, TxOp.MINT) for t in seeded.ticket_ids], "cli",
        )
    jobs = [Job(TxOp.MINT, r.request_id, seeded.tenant_id, None) for r in recorded]
    prepared = [o.prepared for o in await record_jobs(ctx, jobs) if isinstance(o, Submitted)]
    assert len(prepared) == count, prepared
    for attempt in prepared:
        await ctx.rpc.send_raw(attempt.raw)
    return seeded.tenant_id, prepared


async def landed(rpc: SolanaRpc, signatures: Sequence[str], seconds: float = 20.0) -> None:
    """Wait until every signature is confirmed on chain."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        statuses = await rpc.signature_statuses(list(signatures))
        if all(s is not None and s.confirmation_status in ("confirmed", "finalized")
               for s in statuses):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{len(signatures)} transactions did not land in {seconds}s")


async def attempt_states(admin: asyncpg.Connection, tenant: UUID) -> list[tuple[str, int]]:
    rows = await admin.fetch(
        "SELECT status, attempt FROM pending_transactions WHERE tenant_id = $1 ORDER BY attempt",
        tenant,
    )
    return [(row["status"], row["attempt"]) for row in rows]


def signers_of(message: MessageV0) -> tuple[list[Pubkey], list[Pubkey]]:
    """(writable signers, read-only signers) of a message, the fee payer first."""
    header = message.header
    writable = header.num_required_signatures - header.num_readonly_signed_accounts
    keys = list(message.account_keys)
    return keys[:writable], keys[writable : header.num_required_signatures]
