"""The database layer's one error type."""

from __future__ import annotations


class DatabaseError(Exception):
    """A database operation failed; the message says what and where."""
