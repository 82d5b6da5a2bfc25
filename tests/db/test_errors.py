"""The database layer's errors: a busy ticket is TicketBusy, and what is transient or
contention is told apart from what is not, by class."""

from __future__ import annotations

from uuid import UUID, uuid4

import asyncpg
import pytest

from chainworker.db import requests, transactions
from chainworker.db import seed as seed_data
from chainworker.db.errors import DatabaseError, TicketBusy, is_contention, is_transient
from chainworker.db.requests import NewRequest
from chainworker.db.transactions import NewAttempt
from chainworker.lifecycle.model import RequestStatus, TxOp


def _attempt(seeded: seed_data.Seeded, ticket: UUID) -> NewAttempt:
    return NewAttempt(
        tenant_id=seeded.tenant_id, ticket_id=ticket, event_id=seeded.event_id,
        transfer_id=None, request_id=uuid4(), op=TxOp.MINT, signature=f"sig-{uuid4().hex}",
        blockhash="11111111111111111111111111111111", last_valid_block_height=1000,
        serialized_tx=b"\x01", attempt=1, parent_tx_id=None, job_id=None, max_retries=3,
        estimated_lamports=10_000,
    )


async def test_a_second_live_transaction_for_a_ticket_is_ticket_busy(
    admin_conn: asyncpg.Connection, app_conn: asyncpg.Connection
) -> None:
    seeded = await seed_data.seed_tenant(admin_conn, tickets=2)
    ticket, other = seeded.ticket_ids
    async with app_conn.transaction():
        await app_conn.execute("SELECT set_tenant_context($1)", seeded.tenant_id)
        await transactions.record_attempts(app_conn, [_attempt(seeded, ticket)])
    with pytest.raises(TicketBusy, match="uq_pending_tx_live_ticket"):
        async with app_conn.transaction():
            await app_conn.execute("SELECT set_tenant_context($1)", seeded.tenant_id)
            await transactions.record_attempts(
                app_conn, [_attempt(seeded, other), _attempt(seeded, ticket)]
            )
    # Nothing of the refused statement stays: the other ticket has no attempt either.
    count = await admin_conn.fetchval(
        "SELECT count(*) FROM pending_transactions WHERE ticket_id = $1", other
    )
    assert count == 0


async def test_requeueing_onto_a_live_request_is_ticket_busy(
    admin_conn: asyncpg.Connection, app_conn: asyncpg.Connection
) -> None:
    seeded = await seed_data.seed_tenant(admin_conn, tickets=1)
    [ticket] = seeded.ticket_ids
    async with app_conn.transaction():
        await app_conn.execute("SELECT set_tenant_context($1)", seeded.tenant_id)
        [old] = await requests.record_requests(
            app_conn, seeded.tenant_id, TxOp.MINT, [NewRequest(ticket, TxOp.MINT)], "cli"
        )
        await requests.settle(app_conn, old.request_id, RequestStatus.FAILED, code="x")
        await requests.record_requests(
            app_conn, seeded.tenant_id, TxOp.MINT, [NewRequest(ticket, TxOp.MINT)], "cli"
        )
    with pytest.raises(TicketBusy):
        async with app_conn.transaction():
            await app_conn.execute("SELECT set_tenant_context($1)", seeded.tenant_id)
            await requests.requeue(app_conn, old.request_id)


@pytest.mark.parametrize(
    ("error", "transient", "contention"),
    [
        (OSError("reset"), True, False),
        (asyncpg.PostgresConnectionError("gone"), True, False),
        (asyncpg.LockNotAvailableError("lock"), True, True),
        (asyncpg.DeadlockDetectedError("deadlock"), True, True),
        (asyncpg.SerializationError("serialization"), True, True),
        (asyncpg.ReadOnlySQLTransactionError("standby"), True, False),
        (TicketBusy("busy"), False, True),
        (DatabaseError("kept changing"), False, False),
        (asyncpg.UniqueViolationError("other index"), False, False),
        (asyncpg.CheckViolationError("check"), False, False),
        (ValueError("a bug"), False, False),
    ],
)
def test_each_error_is_read_by_its_class(
    error: BaseException, transient: bool, contention: bool
) -> None:
    assert (is_transient(error), is_contention(error)) == (transient, contention)
