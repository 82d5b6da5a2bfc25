"""Checks of text an operator or a caller gives, which is stored or shown: each bad value is
refused with one message."""

from __future__ import annotations

import unicodedata

# Shown back in a message: enough to recognise the value, never a screenful.
SHOWN_CHARACTERS = 60


def shown(text: str) -> str:
    """The value as a message quotes it: repr (control characters escaped), cut when long."""
    if len(text) <= SHOWN_CHARACTERS:
        return repr(text)
    return f"{text[:SHOWN_CHARACTERS]!r}… ({len(text):,} characters)"


def plain_text(text: str, what: str, *, max_length: int) -> str:
    """`text` when it is 1 to `max_length` characters of printable text; ValueError otherwise.

    Refused: control characters (NUL, which PostgreSQL text cannot hold, newlines and
    escape sequences, which would forge lines in logs and terminals) and lone surrogates
    (what Python makes of an argument that was not UTF-8, and cannot be sent to the
    database).
    """
    if not text.strip():
        raise ValueError(f"{what} must not be empty")
    if len(text) > max_length:
        raise ValueError(f"{what} must be at most {max_length} characters, not {len(text):,}")
    for char in text:
        category = unicodedata.category(char)
        if category == "Cs":
            raise ValueError(f"{what} {shown(text)} is not valid UTF-8 text")
        if category == "Cc":
            raise ValueError(f"{what} {shown(text)} holds a control character")
    return text
