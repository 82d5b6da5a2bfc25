"""How the pipeline reads the two edges' errors: "not now" against "not this"."""

from __future__ import annotations

import asyncpg
import pytest

from chainworker.chain import errors as chain_errors
from chainworker.chain.errors import ChainError
from chainworker.db.errors import TicketBusy
from chainworker.pipeline.errors import is_transient, not_the_rows_fault


@pytest.mark.parametrize("kind", sorted(chain_errors.RETRYABLE_KINDS))
def test_what_an_endpoint_may_answer_next_time_is_transient(kind: str) -> None:
    error = ChainError(kind, "x")
    assert error.retryable and error.is_transient() and is_transient(error)


@pytest.mark.parametrize("kind", [chain_errors.RPC, chain_errors.BAD_RESPONSE])
def test_an_answer_that_was_garbage_or_an_error_is_transient_but_not_retried_now(
    kind: str,
) -> None:
    error = ChainError(kind, "x")
    assert not error.retryable and is_transient(error)


@pytest.mark.parametrize("kind", sorted(chain_errors.LASTING_KINDS))
def test_what_says_something_about_the_request_or_the_setup_is_not(kind: str) -> None:
    error = ChainError(kind, "x")
    assert not error.is_transient() and not is_transient(error)
    assert not_the_rows_fault(error)  # still never a reason to set a row aside


def test_the_database_side_is_read_by_the_database_layer() -> None:
    assert is_transient(asyncpg.PostgresConnectionError("gone"))
    assert not is_transient(TicketBusy("busy"))
    assert not is_transient(asyncpg.CheckViolationError("check"))
    assert not not_the_rows_fault(asyncpg.CheckViolationError("check"))
