"""Garbage answers, shaped like the ones broken proxies and nodes really send.

Each kind turns an honest JSON-RPC answer (one response object, or a batch's
list) into the bytes a client would receive. The answers were computed first, so
the request took effect; only what comes back is wrong. Nothing here mutates the
answer in place: results may share objects with the ledger's records.
"""

from __future__ import annotations

import functools
import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

GARBAGE_KINDS = ("wrong_types", "missing_fields", "huge_integers", "truncated", "html", "batch_ids")
# i64 overflow, u64 overflow, and a number only a float can hold.
HUGE_INTEGERS = (2**63, 2**64, 10**30)

_HTML_PAGES = (
    "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    "<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n"
    "</body>\r\n</html>\r\n",
    '<!DOCTYPE html>\n<html lang="en">\n<head><meta charset="utf-8">'
    "<title>520: Web server is returning an unknown error</title></head>\n"
    "<body><h1>Web server is returning an unknown error</h1>"
    "<p>Error code 520</p></body>\n</html>\n",
    "<!DOCTYPE html><html><head><title>Just a moment...</title></head>"
    "<body><noscript>Enable JavaScript and cookies to continue</noscript></body></html>",
)


@dataclass(frozen=True)
class Garbage:
    body: bytes
    content_type: bytes = b"application/json"


def garble(kind: str, payload: Any, affected: list[bool], rng: random.Random) -> Garbage:
    """The garbage of `kind` for an answer; `affected` marks the entries it may touch."""
    if kind == "html":
        return Garbage(rng.choice(_HTML_PAGES).encode(), b"text/html")
    if kind == "truncated":
        body = orjson.dumps(payload)
        return Garbage(body[: rng.randrange(1, len(body))])
    if kind == "batch_ids":
        if isinstance(payload, list):
            return _dump(_batch_ids(payload, rng))
        return _dump({**payload, "id": None})  # a single answer: the id is lost
    entries = payload if isinstance(payload, list) else [payload]
    change: Callable[[Any], Any]
    if kind == "huge_integers":
        huge = rng.choice(HUGE_INTEGERS)
        change = functools.partial(_huge_integers, huge=huge)
    elif kind == "wrong_types":
        change = _wrong_types
    elif kind == "missing_fields":
        change = functools.partial(_missing_fields, rng=rng)
    else:
        raise ValueError(f"unknown garbage kind {kind!r}")
    changed = [change(e) if hit else e for e, hit in zip(entries, affected, strict=True)]
    return _dump(changed if isinstance(payload, list) else changed[0])


def _dump(payload: Any) -> Garbage:
    # The standard library, not orjson: orjson refuses integers beyond 64 bits.
    return Garbage(json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode())


def _member(entry: Any) -> str | None:
    """The member carrying the answer: "result", or "error" for an error response."""
    if not isinstance(entry, dict):
        return None
    if "result" in entry:
        return "result"
    return "error" if "error" in entry else None


def _retyped(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | list | dict):
        return value
    if isinstance(value, int):
        return str(value)
    if isinstance(value, list):
        return {str(index): _retyped(item) for index, item in enumerate(value)}
    return {key: _retyped(item) for key, item in value.items()}


def _wrong_types(entry: Any) -> Any:
    """Every integer as a string, every list as an object; else the answer inside a list."""
    member = _member(entry)
    if member is None:
        return entry
    value = entry[member]
    changed = _retyped(value)
    if changed == value:
        changed = [value]
    return {**entry, member: changed}


def _enlarged(value: Any, huge: int) -> Any:
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return huge
    if isinstance(value, list):
        return [_enlarged(item, huge) for item in value]
    if isinstance(value, dict):
        return {key: _enlarged(item, huge) for key, item in value.items()}
    return value


def _huge_integers(entry: Any, huge: int) -> Any:
    """Every integer (slots, heights, lamports, counts) huge; an answer with none becomes one."""
    member = _member(entry)
    if member is None:
        return entry
    value = entry[member]
    changed = _enlarged(value, huge)
    if changed == value:
        changed = huge
    return {**entry, member: changed}


def _without(mapping: dict[str, Any], name: str) -> dict[str, Any]:
    return {key: item for key, item in mapping.items() if key != name}


def _missing_fields(entry: Any, rng: random.Random) -> Any:
    """Drop a member the client needs: value, context or its slot; a result member; or all."""
    member = _member(entry)
    if member is None:
        return entry
    if member == "error":
        return {**entry, "error": _without(entry["error"], "code")}
    result = entry["result"]
    if isinstance(result, dict) and "context" in result and "value" in result:
        drop = rng.choice(("value", "context", "context.slot"))
        if drop == "context.slot" and isinstance(result["context"], dict):
            return {**entry, "result": {**result, "context": _without(result["context"], "slot")}}
        return {**entry, "result": _without(result, drop.split(".")[0])}
    if isinstance(result, dict) and result:
        return {**entry, "result": _without(result, rng.choice(sorted(result)))}
    return _without(entry, "result")


def _batch_ids(entries: list[Any], rng: random.Random) -> list[Any]:
    """A batch answer whose ids no longer match the requests one to one."""
    changed = list(entries)
    ways = ["missing", "duplicated"] + (["reordered"] if len(changed) > 1 else [])
    way = rng.choice(ways)
    if way == "reordered":
        return changed[::-1]
    if way == "duplicated":
        if len(changed) == 1:
            return [changed[0], changed[0]]
        source, target = rng.sample(range(len(changed)), 2)
        if isinstance(changed[target], dict) and isinstance(changed[source], dict):
            changed[target] = {**changed[target], "id": changed[source].get("id")}
        return changed
    index = rng.randrange(len(changed))
    if len(changed) > 1 and rng.random() < 0.5:
        del changed[index]  # an answer missing altogether
    elif isinstance(changed[index], dict):
        changed[index] = _without(changed[index], "id")
    return changed
