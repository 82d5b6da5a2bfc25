"""A metadata change's rules by example, and what its steps make of any metadata (properties)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chainworker.chain import nft
from chainworker.lifecycle import metadata
from chainworker.lifecycle.metadata import (
    MAX_CHANGES,
    VALUE_MAX_BYTES,
    Metadata,
    MetadataChange,
    apply,
    apply_step,
    check_change,
    growth,
    steps,
)


def test_a_valid_change_is_kept_sorted_and_round_trips_its_stored_form() -> None:
    change = check_change({"uri": "https://x.example/2", "seat": "B-2", "name": "Show #2"},
                          ["section", "gate"])
    assert change.fields == (("name", "Show #2"), ("seat", "B-2"), ("uri", "https://x.example/2"))
    assert change.remove == ("gate", "section")
    assert MetadataChange.of_json(change.as_json()) == change
    assert check_change({}, ["seat"]).fields == ()
    assert check_change({"note": "é" * (VALUE_MAX_BYTES // 2)}, None).fields[0][0] == "note"


@pytest.mark.parametrize(
    ("fields", "remove", "why"),
    [
        ({}, [], "at least one"),
        (None, None, "at least one"),
        ({"ticket_id": "x"}, None, "ties the NFT"),
        ({}, ["event_id"], "ties the NFT"),
        ({"symbol": "NEW"}, None, "symbol is the platform's"),
        ({}, ["uri"], "cannot be removed"),
        ({}, ["name"], "cannot be removed"),
        ({"name": " "}, None, "name must not be empty"),
        ({"name": "n" * 33}, None, "at most 32"),
        ({"uri": "u" * 118}, None, "at most 117"),
        ({"seat": "s" * (VALUE_MAX_BYTES + 1)}, None, f"at most {VALUE_MAX_BYTES}"),
        ({"seat": "a\nb"}, None, "control character"),
        ({"seat": "\ud800"}, None, "not valid UTF-8"),
        ({"seat ": "a"}, None, "must be 1 to 32"),
        ({"séat": "a"}, None, "must be 1 to 32"),
        ({"k" * 33: "a"}, None, "must be 1 to 32"),
        ({".hidden": "a"}, None, "must be 1 to 32"),
        ({"": "a"}, None, "must be 1 to 32"),
        ({"seat": 7}, None, "must be text"),
        ({"seat": "a"}, ["seat"], "both set and removed"),
        ({}, ["seat", "seat"], "removed twice"),
        ({f"k{i}": "v" for i in range(MAX_CHANGES + 1)}, None, f"at most {MAX_CHANGES}"),
        (["seat"], None, "fields must be an object"),
        ({}, "seat", "remove must be a list"),
    ],
)
def test_a_change_that_breaks_a_rule_is_refused_with_its_reason(
    fields: object, remove: object, why: str
) -> None:
    with pytest.raises(ValueError, match=why):
        check_change(fields, remove)


def test_name_and_uri_keep_the_mints_bounds() -> None:
    assert metadata.NAME_MAX_BYTES == nft.NAME_MAX_BYTES
    assert metadata.URI_MAX_BYTES == nft.URI_MAX_BYTES


def packed(text: Metadata) -> int:
    """The borsh size of the metadata's text (what Token-2022 stores after the two keys)."""
    def size(value: str) -> int:
        return 4 + len(value.encode("utf-8"))

    return (size(text.name) + size(text.symbol) + size(text.uri) + 4
            + sum(size(k) + size(v) for k, v in text.additional))


keys = st.sampled_from(["seat", "section", "status", "checked_in_at", "gate", "row", "note"])
values = st.text(st.characters(codec="utf-8", categories=["L", "N", "P", "Zs"]), max_size=10)
current_metadata = st.builds(
    Metadata,
    name=values.filter(str.strip),
    symbol=st.just("TIX"),
    uri=values,
    additional=st.dictionaries(keys, values, max_size=5).map(
        lambda d: (("ticket_id", "t"), ("event_id", "e"), *d.items())
    ),
)
base = st.sampled_from(["name", "uri"])
changes = st.tuples(
    st.dictionaries(keys | base, values.filter(str.strip), max_size=6),
    st.lists(keys, max_size=4, unique=True),
).filter(lambda fr: (fr[0] or fr[1]) and not set(fr[0]) & set(fr[1])).map(
    lambda fr: check_change(*fr)
)


@settings(max_examples=150, deadline=None)
@given(current=current_metadata, change=changes)
def test_steps_never_grow_the_account_past_its_ends_and_do_what_the_change_says(
    current: Metadata, change: MetadataChange
) -> None:
    start, end = packed(current), packed(apply(current, change))
    size = start
    now = current
    for step in steps(current, change):
        size += growth(now, step)
        now = apply_step(now, step)
        assert size == packed(now)  # growth is the packed size's change
        assert size <= max(start, end)  # what the end's rent pays for covers every step
    assert size == end
    # The result is the change: removed keys gone, set fields set, the rest as they were,
    # existing keys where they were and new ones after them.
    wanted = dict(current.additional)
    for key in change.remove:
        wanted.pop(key, None)
    fields = dict(change.fields)
    name, uri = fields.pop("name", current.name), fields.pop("uri", current.uri)
    wanted.update(fields)
    assert (now.name, now.symbol, now.uri) == (name, current.symbol, uri)
    assert dict(now.additional) == wanted
    kept = [k for k, _ in current.additional if k in wanted]
    assert [k for k, _ in now.additional][: len(kept)] == kept
    assert dict(now.additional)["ticket_id"] == "t"  # never touched


@given(st.binary(min_size=32, max_size=32))
def test_a_rotations_change_names_a_public_key_and_round_trips(raw: bytes) -> None:
    from solders.pubkey import Pubkey

    address = str(Pubkey.from_bytes(raw))
    change = metadata.authority_change(address)
    assert (change.fields, change.remove, change.authority) == ((), (), address)
    assert metadata.MetadataChange.of_json(change.as_json()) == change


@pytest.mark.parametrize(
    "stored",
    [
        {"fields": {}, "remove": [], "authority": "0OIl" * 10},  # not base58
        {"fields": {}, "remove": [], "authority": "short"},
        {"fields": {}, "remove": [], "authority": 7},
        {"fields": {"seat": "A-1"}, "remove": [], "authority": "11111111111111111111111111111111"},
    ],
)
def test_a_rotation_names_a_key_and_nothing_else(stored: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        metadata.MetadataChange.of_json(stored)
