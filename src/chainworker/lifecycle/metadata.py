"""A metadata update's change: the fields of a ticket NFT's metadata it sets and the keys it
removes, the rules a change follows, and what it makes of the metadata on chain.

Pure: no I/O. The API, the outbox relay, the CLI and the event-wide update all check a
change here before it is recorded (`check_change`); the worker builds its transaction from
`steps`, in their order, against the metadata it reads from the chain.

Choices made here:
- `name` and `uri` may be set, never removed (they are the metadata's own fields); a
  custom key (seat, section, checked_in_at, status, ...) may be set or removed.
- `symbol` is refused: it is the platform's (NFT_SYMBOL), the same on every ticket.
- `ticket_id` and `event_id` are refused: chainworker writes them at the mint, and they
  are what ties the NFT to its ticket.
- Keys are short identifiers (letters, digits, `_ . : -`), so that no key can pass for
  another (a trailing space, a look-alike letter). Values are text without control
  characters, at most `VALUE_MAX_BYTES` (`name` and `uri` keep the mint's bounds); whether
  the whole change fits in one transaction is decided when it is built.
- Removals come first, then the fields that shrink the account, then those that grow it:
  the account is never larger on the way than at the end or at the start, so the lamports
  added for its final size cover every step.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

NAME: Final = "name"
SYMBOL: Final = "symbol"
URI: Final = "uri"
BASE_FIELDS: Final = frozenset({NAME, SYMBOL, URI})
# chainworker's own fields, written at the mint (chain/nft.py).
RESERVED_KEYS: Final = frozenset({"ticket_id", "event_id"})

KEY_MAX_BYTES: Final = 32
KEY_PATTERN: Final = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:-]{0,31}")
# The mint's bounds for name and uri (chain/nft.py), so that wallets show an updated ticket
# as they show a new one.
NAME_MAX_BYTES: Final = 32
URI_MAX_BYTES: Final = 117
VALUE_MAX_BYTES: Final = 512
MAX_CHANGES: Final = 16

# Borsh: a string is a u32 length and its bytes; an additional field is two strings.
_STRING_HEADER: Final = 4


# A Solana public key in base58 (32 bytes: 32 to 44 characters of Bitcoin's alphabet).
PUBLIC_KEY_PATTERN: Final = re.compile(r"[1-9A-HJ-NP-Za-km-z]{32,44}")


@dataclass(frozen=True, slots=True)
class MetadataChange:
    """Fields to set (key -> value) and custom keys to remove, each sorted by key; or, for
    an authority rotation, the new platform authority (`authority`) and nothing else."""

    fields: tuple[tuple[str, str], ...] = ()
    remove: tuple[str, ...] = ()
    # A rotation's: every platform authority of the NFT moves to this key (base58).
    authority: str | None = None

    def as_json(self) -> dict[str, Any]:
        """The stored form (`chain_requests.changes`, outbox payloads, the API body)."""
        stored: dict[str, Any] = {"fields": dict(self.fields), "remove": list(self.remove)}
        if self.authority is not None:
            stored["authority"] = self.authority
        return stored

    @classmethod
    def of_json(cls, value: object) -> MetadataChange:
        """A change from its stored form; ValueError when it breaks a rule."""
        if not isinstance(value, Mapping):
            raise ValueError("a metadata change is an object with fields and remove")
        if value.get("authority") is not None:
            if value.get("fields") or value.get("remove"):
                raise ValueError("an authority rotation changes no field")
            return authority_change(value["authority"])
        return check_change(value.get("fields"), value.get("remove"))


def authority_change(authority: object) -> MetadataChange:
    """The change of an authority rotation to `authority`; ValueError unless it reads as a
    public key (whether it is one, and the workers' own, is checked when it is signed)."""
    if not isinstance(authority, str) or not PUBLIC_KEY_PATTERN.fullmatch(authority):
        raise ValueError("the new authority must be a base58 public key")
    return MetadataChange(authority=authority)


@dataclass(frozen=True, slots=True)
class Metadata:
    """The text of a TokenMetadata: what a change can touch."""

    name: str
    symbol: str
    uri: str
    additional: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class Step:
    """One instruction of an update: set `key` to `value`, or remove `key` (value None)."""

    key: str
    value: str | None

    @property
    def removes(self) -> bool:
        return self.value is None


def check_change(fields: object, remove: object) -> MetadataChange:
    """The change, when it follows the rules above; ValueError saying which one it breaks."""
    if fields is None:
        fields = {}
    if remove is None:
        remove = []
    if not isinstance(fields, Mapping):
        raise ValueError("fields must be an object of key -> text")
    if isinstance(remove, str | bytes) or not isinstance(remove, Sequence):
        raise ValueError("remove must be a list of keys")
    if not fields and not remove:
        raise ValueError("a metadata update needs at least one field to set or key to remove")
    if len(fields) + len(remove) > MAX_CHANGES:
        raise ValueError(f"at most {MAX_CHANGES} fields may be set or removed at once")
    for key, value in fields.items():
        _check_key(key, setting=True)
        _check_value(key, value)
    seen: set[str] = set()
    for key in remove:
        _check_key(key, setting=False)
        if key in seen:
            raise ValueError(f"key {key!r} is removed twice")
        if key in fields:
            raise ValueError(f"key {key!r} is both set and removed")
        seen.add(key)
    return MetadataChange(tuple(sorted(fields.items())), tuple(sorted(seen)))


def _check_key(key: object, *, setting: bool) -> None:
    if not isinstance(key, str):
        raise ValueError("metadata keys are text")
    if key == SYMBOL:
        raise ValueError("symbol is the platform's, the same on every ticket: it is not updated")
    if key in RESERVED_KEYS:
        raise ValueError(f"{key} ties the NFT to its ticket: it is not changed or removed")
    if key in BASE_FIELDS:
        if not setting:
            raise ValueError(f"{key} cannot be removed, only set")
        return
    if not KEY_PATTERN.fullmatch(key):
        raise ValueError(
            f"key {_shown(key)} must be 1 to {KEY_MAX_BYTES} letters, digits or _ . : - "
            "(not starting with . : -)"
        )


def _check_value(key: str, value: object) -> None:
    if not isinstance(value, str):
        raise ValueError(f"the value of {key} must be text")
    size = len(value.encode("utf-8", "surrogatepass"))
    limit = {NAME: NAME_MAX_BYTES, URI: URI_MAX_BYTES}.get(key, VALUE_MAX_BYTES)
    if size > limit:
        raise ValueError(f"the value of {key} is {size} bytes; at most {limit} are allowed")
    if key == NAME and not value.strip():
        raise ValueError("name must not be empty")
    for char in value:
        category = unicodedata.category(char)
        if category == "Cs":
            raise ValueError(f"the value of {key} is not valid UTF-8 text")
        if category == "Cc":
            raise ValueError(f"the value of {key} holds a control character")


def _shown(text: str) -> str:
    return repr(text) if len(text) <= 40 else f"{text[:40]!r}…"


def _size(text: str) -> int:
    return _STRING_HEADER + len(text.encode("utf-8"))


def growth(metadata: Metadata, step: Step) -> int:
    """Bytes the packed metadata grows by (negative: shrinks) when `step` is applied."""
    current = _current(metadata, step.key)
    if step.value is None:
        return 0 if current is None else -(_size(step.key) + _size(current))
    if current is None:  # a new custom field, appended
        return _size(step.key) + _size(step.value)
    return _size(step.value) - _size(current)


def _current(metadata: Metadata, key: str) -> str | None:
    if key == NAME:
        return metadata.name
    if key == SYMBOL:
        return metadata.symbol
    if key == URI:
        return metadata.uri
    return dict(metadata.additional).get(key)


def apply_step(metadata: Metadata, step: Step) -> Metadata:
    """What Token-2022 makes of the metadata with one UpdateField or RemoveKey: a set
    field is replaced where it is, or appended when new; a removed key is dropped."""
    key, value = step.key, step.value
    if value is not None and key in BASE_FIELDS:
        return Metadata(
            value if key == NAME else metadata.name,
            value if key == SYMBOL else metadata.symbol,
            value if key == URI else metadata.uri,
            metadata.additional,
        )
    kept = tuple((k, v) for k, v in metadata.additional if k != key or value is not None)
    if value is None:
        return Metadata(metadata.name, metadata.symbol, metadata.uri, kept)
    if any(k == key for k, _ in kept):
        kept = tuple((k, value if k == key else v) for k, v in kept)
    else:
        kept += ((key, value),)
    return Metadata(metadata.name, metadata.symbol, metadata.uri, kept)


def steps(metadata: Metadata, change: MetadataChange) -> list[Step]:
    """The change's instructions in the order they are sent: removals, then the fields that
    shrink the metadata, then those that grow it (by how much, then by key)."""
    removals = [Step(key, None) for key in change.remove]
    after = metadata
    for step in removals:
        after = apply_step(after, step)
    sets = [Step(key, value) for key, value in change.fields]
    # Each set touches its own key, so its growth does not depend on the others.
    sets.sort(key=lambda step: (growth(after, step), step.key))
    return removals + sets


def apply(metadata: Metadata, change: MetadataChange) -> Metadata:
    """The metadata once every step of the change has been applied, in order."""
    for step in steps(metadata, change):
        metadata = apply_step(metadata, step)
    return metadata
