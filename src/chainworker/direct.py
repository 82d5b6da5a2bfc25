"""Requests from a service that shares chainworker's database: recorded and queued without HTTP.

The same path the API and the CLI use (`jobs.enqueue.request_operation`): the requests
are committed, then their jobs enqueued; duplicates collapse onto the live request.
"""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

import asyncpg
from arq.connections import ArqRedis

from chainworker.db.requests import NewRequest, Recorded
from chainworker.jobs.enqueue import request_operation
from chainworker.lifecycle.model import TxOp


async def request_direct(
    pool: asyncpg.Pool,
    arq: ArqRedis,
    queue_name: str,
    tenant_id: UUID,
    operation: TxOp,
    items: Sequence[NewRequest],
) -> list[Recorded]:
    """Record requests and enqueue their jobs without HTTP (for services sharing the database).

    Duplicates collapse onto the live request, as over HTTP. No state checks are made
    here: a request the ticket's state does not allow is refused by the worker, with
    its reason recorded on the request and a `ticket.chain_failed` outbox event.
    """
    return await request_operation(
        pool, arq, queue_name, tenant_id, operation, items, source="client"
    )
