"""The database layer's errors: `DatabaseError`, and `is_transient` for asyncpg's own."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import asyncpg


class DatabaseError(Exception):
    """A database operation failed; the message says what and where."""

    def is_transient(self) -> bool:
        return False


class TicketBusy(DatabaseError):
    """The ticket already has a live transaction or a live request of the kind asked for:
    another operation holds it. Not the caller's fault and not the database's: try later."""


# Errors that say "not now" rather than "not this row", by SQLSTATE class so that none of
# a class is missed: the work is tried again as it is, and no row is set aside for them.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    asyncpg.InterfaceError,
    asyncpg.PostgresConnectionError,  # 08: the connection broke
    asyncpg.TransactionRollbackError,  # 40: serialization failure, deadlock
    asyncpg.InsufficientResourcesError,  # 53: disk full, out of memory, too many connections
    asyncpg.LockNotAvailableError,  # 55P03
    asyncpg.OperatorInterventionError,  # 57: cancelled, shut down, crashed, starting up
    asyncpg.PostgresSystemError,  # 58: I/O error
    asyncpg.ReadOnlySQLTransactionError,  # 25006: a standby, during a failover
)


def is_transient(error: BaseException) -> bool:
    """The database did not answer now; the same work may succeed as it is."""
    if isinstance(error, DatabaseError):
        return error.is_transient()
    return isinstance(error, TRANSIENT_ERRORS)


def is_contention(error: BaseException) -> bool:
    """Rows another transaction holds: a lock waited for too long, a deadlock, a busy
    ticket. Fewer rows at once (one request alone) get through where many did not."""
    return isinstance(
        error, TicketBusy | asyncpg.LockNotAvailableError | asyncpg.TransactionRollbackError
    )


@contextmanager
def busy_on(*indexes: str) -> Iterator[None]:
    """Raise TicketBusy when one of these one-live-per-ticket indexes refuses a row."""
    try:
        yield
    except asyncpg.UniqueViolationError as error:
        if error.constraint_name in indexes:
            raise TicketBusy(f"the ticket is busy ({error.constraint_name})") from error
        raise
