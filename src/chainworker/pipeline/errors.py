"""How the pipeline reads the two edges' errors: "not now" against "not this"."""

from __future__ import annotations

from chainworker.chain.errors import ChainError
from chainworker.db import errors as db_errors


def is_transient(error: BaseException) -> bool:
    """The database or the chain did not answer now: the same work may succeed later."""
    if isinstance(error, ChainError):
        return error.is_transient()
    return db_errors.is_transient(error)


def not_the_rows_fault(error: BaseException) -> bool:
    """Nothing about the row itself: the database did not answer now, or the chain did not
    (any chain error: a row is never set aside for what an endpoint said)."""
    return db_errors.is_transient(error) or isinstance(error, ChainError)
