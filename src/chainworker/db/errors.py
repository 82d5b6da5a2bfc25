"""The database layer's one error type."""

from __future__ import annotations

import asyncpg


class DatabaseError(Exception):
    """A database operation failed; the message says what and where."""


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
    return isinstance(error, TRANSIENT_ERRORS)
