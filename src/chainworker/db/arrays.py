"""Rows handed to one statement as one array per column, for `unnest($1, $2, ...)`.

A batch written by one set statement pays the statement's setup once (its table's
checks, triggers and generated columns are prepared per execution, not per row); a
statement per row pays it for every row.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any


def columns(rows: Iterable[Sequence[Any]], width: int) -> list[list[Any]]:
    """The `width` columns of `rows`, each as a list (the arrays a set statement unnests),
    in the order of the rows' first value, an id: a statement that locks its rows one
    after another then locks them in id order, so that two batches cannot deadlock."""
    ordered = sorted(rows, key=lambda row: row[0])
    for row in ordered:
        if len(row) != width:
            raise ValueError(f"a row of {len(row)} values where {width} were expected")
    return [[row[i] for row in ordered] for i in range(width)]
