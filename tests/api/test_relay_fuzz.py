"""The outbox relay over generated rows: arbitrary JSON payloads (deep, huge, of any type),
arbitrary event_type and aggregate_type text, ids of the tenant, of another tenant or of
nothing, relayed in one `relay_once` together with good rows of another tenant.

Each example has tenants of its own in the module's database. Whatever the rows: the call
never raises, the good rows are recorded, each generated row ends in the one state its
content calls for (recorded, quarantined or retried with `last_error`, or left alone when
it is not the relay's), and nothing changes beyond outbox and chain_requests rows of
those tenants: a third tenant's rows stay as they were.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg
import pytest
from arq.connections import ArqRedis
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from chainworker.db import seed
from chainworker.jobs.queue import ArqQueue
from chainworker.lifecycle.metadata import check_change
from chainworker.lifecycle.model import BurnReason
from chainworker.pipeline.relay import RELAYED_EVENTS, relay_once
from tests.conftest import own_queue_name
from tests.snapshot import changed, table_digests

pytestmark = pytest.mark.timeout(120)

MAX_ATTEMPTS = 3
RETRY_SECONDS = 600.0

# jsonb holds no NUL and no lone surrogate: such rows cannot be written at all.
_TEXT = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=30)
_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | _TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_TEXT, inner, max_size=4),
    max_leaves=20,
)


def _deep(depth: int, in_list: bool) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value] if in_list else {"a": value}
    return value


PAYLOADS = st.one_of(
    _JSON,
    st.dictionaries(_TEXT, _JSON, max_size=5),
    st.just({}),
    st.fixed_dictionaries(
        {"reason": st.one_of(st.sampled_from(list(BurnReason)), _JSON)}, optional={"note": _JSON}
    ),
    st.builds(
        lambda depth, in_list, reason: {"reason": reason, "x": _deep(depth, in_list)},
        st.integers(10, 40),
        st.booleans(),
        st.sampled_from(list(BurnReason)),
    ),
    # a metadata update's: fields and keys of every kind, good ones among them
    st.fixed_dictionaries({}, optional={
        "fields": st.dictionaries(
            st.sampled_from(["seat", "uri", "name", "ticket_id", "symbol", "bad key"]) | _TEXT,
            _TEXT | _JSON, max_size=3,
        ) | _JSON,
        "remove": st.lists(st.sampled_from(["gate", "uri", "event_id"]) | _JSON, max_size=3)
        | _JSON,
    }),
    st.builds(
        lambda size, reason: {"reason": reason, "blob": "x" * size},
        st.sampled_from([10_000, 17_000, 200_000]),
        st.sampled_from(list(BurnReason)),
    ),
)
OTHER_EVENT_TYPES = st.one_of(
    st.sampled_from(["NFT.MINT_REQUESTED", "nft.mint_requested ", "ticket.minted", "nft.", ""]),
    _TEXT,
    st.just("nft.mint_requested'; DROP TABLE tickets; --"),
    st.just("e" * 50_000),
)
OTHER_AGGREGATE_TYPES = st.one_of(
    st.sampled_from(["ticket", "ticket_transfer", "Ticket"]),
    _TEXT,
    st.just("ticket' OR 1=1 --"),
    st.just("t" * 50_000),
)
TARGETS = st.sampled_from(["own ticket", "own transfer", "other tenant's ticket", "nothing"])
# Mostly what the relay reads (so the payload and the target are what is wrong), else anything.
MOSTLY = st.sampled_from([True, True, True, False])


@dataclass(frozen=True)
class Row:
    event_type: str
    aggregate_type: str
    target: str
    payload: Any


@st.composite
def rows(draw: st.DrawFn) -> Row:
    if draw(MOSTLY):
        event_type = draw(st.sampled_from(sorted(RELAYED_EVENTS)))
    else:
        event_type = draw(OTHER_EVENT_TYPES)
    aggregate_type = RELAYED_EVENTS.get(event_type, ("mint", "ticket"))[1]
    if not draw(MOSTLY):
        aggregate_type = draw(OTHER_AGGREGATE_TYPES)
    right = "own transfer" if event_type == "nft.transfer_requested" else "own ticket"
    target = right if draw(MOSTLY) else draw(TARGETS)
    return Row(event_type, aggregate_type, target, draw(PAYLOADS))


ROWS = st.lists(rows(), min_size=1, max_size=4)


@pytest.fixture(scope="module")
async def bystander(admin: asyncpg.Connection) -> seed.Seeded:
    """A tenant with relayed rows of its own before the examples start."""
    tenant = await seed.seed_tenant(admin, tickets=2, tenant_name="bystander")
    await admin.execute(
        """INSERT INTO outbox (tenant_id, aggregate_type, aggregate_id, event_type, payload,
                               processed_at, attempts)
           VALUES ($1, 'ticket', $2, 'nft.mint_requested', '{}', now(), 1)""",
        tenant.tenant_id,
        tenant.ticket_ids[0],
    )
    return tenant


async def _insert(
    admin: asyncpg.Connection,
    tenant_id: uuid.UUID,
    event_type: str,
    aggregate_type: str,
    aggregate_id: uuid.UUID,
    payload: str,
) -> int:
    outbox_id: int = await admin.fetchval(
        """INSERT INTO outbox (tenant_id, aggregate_type, aggregate_id, event_type, payload)
           VALUES ($1, $2, $3, $4, $5::jsonb) RETURNING id""",
        tenant_id,
        aggregate_type,
        aggregate_id,
        event_type,
        payload,
    )
    return outbox_id


async def _expected(admin: asyncpg.Connection, row: Row, exists: bool, text: str) -> str:
    """What the row must become: untouched, quarantined, retried or recorded."""
    if row.event_type not in RELAYED_EVENTS:
        return "untouched"  # not a request for chainworker: never claimed
    operation, aggregate_type = RELAYED_EVENTS[row.event_type]
    if row.aggregate_type != aggregate_type:
        return "quarantined"
    # The relay's limits (an object, 16 KiB, 16 deep) are the claim's own SQL.
    if await admin.fetchval("SELECT chainworker_payload_problem($1::jsonb)", text) is not None:
        return "quarantined"
    reason = row.payload.get("reason")
    if operation == "burn" and not (isinstance(reason, str) and reason in set(BurnReason)):
        return "quarantined"
    if operation == "metadata_update":
        shape = "SELECT chainworker_metadata_payload_problem($1::jsonb)"
        if await admin.fetchval(shape, text) is not None:
            return "quarantined"
        try:  # the rules every way in checks
            check_change(row.payload.get("fields"), row.payload.get("remove"))
        except ValueError:
            return "quarantined"
    return "recorded" if exists else "retried"


@settings(
    max_examples=40,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)
@given(rows=ROWS)
# Compressible: 200 KB stored in 2 KB, which the size check once measured.
@example(
    rows=[
        Row(
            "nft.burn_requested",
            "ticket",
            "own ticket",
            {"reason": "revoke", "blob": "x" * 200_000},
        )
    ]
)
# A metadata update's fields of the wrong kind beside good ones: read only once their shape
# is known (a function over the wrong kind of value failed the whole claim).
@example(
    rows=[
        Row("nft.metadata_update_requested", "ticket", "own ticket", {"fields": [1, 2]}),
        Row("nft.metadata_update_requested", "ticket", "own ticket", {"remove": {"a": 1}}),
        Row("nft.metadata_update_requested", "ticket", "own ticket",
            {"fields": {"seat": "A-1"}, "remove": ["gate"]}),
        Row("nft.metadata_update_requested", "ticket", "own ticket", {"fields": {"seat": "B"}}),
    ]
)
async def test_generated_rows_never_stop_the_relay_nor_change_anything_else(
    rows: list[Row],
    pool: asyncpg.Pool,
    admin: asyncpg.Connection,
    arq: ArqRedis,
    bystander: seed.Seeded,
) -> None:
    good = await seed.seed_tenant(admin, tickets=2, tenant_name="good")
    bad = await seed.seed_tenant(admin, tickets=2, users=2, tenant_name="bad")
    [transfer] = await seed.accepted_transfers(
        admin, bad.tenant_id, bad.ticket_ids[:1], bad.user_ids[1]
    )
    good_rows = [
        await _insert(admin, good.tenant_id, "nft.mint_requested", "ticket", ticket, "{}")
        for ticket in good.ticket_ids
    ]
    ids = {
        "own ticket": bad.ticket_ids[1],
        "own transfer": transfer,
        "other tenant's ticket": good.ticket_ids[0],
        "nothing": uuid.uuid4(),
    }
    made: list[tuple[int, str, Row]] = []
    for row in rows:
        aggregate_id = ids[row.target]
        text = json.dumps(row.payload)
        kind = RELAYED_EVENTS.get(row.event_type, ("mint", "ticket"))
        # What the row names must be of the kind its event asks for, and this tenant's.
        exists = (row.target == "own transfer") == (kind[0] == "transfer") and row.target in (
            "own ticket",
            "own transfer",
        )
        expected = await _expected(admin, row, exists, text)
        outbox_id = await _insert(
            admin, bad.tenant_id, row.event_type, row.aggregate_type, aggregate_id, text
        )
        made.append((outbox_id, expected, row))

    queue = own_queue_name("relay-fuzz")
    before = await table_digests(admin)
    bystander_before = await table_digests(admin, bystander.tenant_id)
    result = await relay_once(
        pool, ArqQueue(arq, queue), max_attempts=MAX_ATTEMPTS, retry_seconds=RETRY_SECONDS
    )
    assert changed(before, await table_digests(admin)) <= {"outbox", "chain_requests"}
    assert await table_digests(admin, bystander.tenant_id) == bystander_before

    # The good rows of the other tenant: recorded in the same round.
    states = await admin.fetch(
        """SELECT id, attempts, last_error, processed_at IS NOT NULL AS processed,
                  quarantined_at IS NOT NULL AS quarantined,
                  available_at > now() + interval '5 minutes' AS pushed
             FROM outbox WHERE id = ANY($1::bigint[])""",
        good_rows + [outbox_id for outbox_id, _, _ in made],
    )
    by_id = {state["id"]: state for state in states}
    for outbox_id in good_rows:
        state = by_id[outbox_id]
        assert (state["processed"], state["attempts"], state["last_error"]) == (True, 1, None)
    good_requests = await admin.fetchval(
        "SELECT count(*) FROM chain_requests WHERE tenant_id = $1 AND source = 'outbox'",
        good.tenant_id,
    )
    assert good_requests == len(good.ticket_ids)

    recorded_keys: set[tuple[str, uuid.UUID, int]] = set()
    for outbox_id, expected, row in made:
        state = by_id[outbox_id]
        seen = (state["processed"], state["quarantined"], state["attempts"])
        where = (
            expected,
            row.event_type[:40],
            row.aggregate_type[:40],
            row.target,
            json.dumps(row.payload)[:200],
            state["last_error"],
        )
        if expected == "untouched":
            assert seen == (False, False, 0) and state["last_error"] is None, where
        elif expected == "quarantined":
            assert seen == (True, True, 1) and state["last_error"], where
            assert len(state["last_error"]) <= 1000, where
        elif expected == "retried":
            assert seen == (False, False, 1) and state["pushed"] and state["last_error"], where
        else:
            assert seen == (True, False, 1) and state["last_error"] is None, where
            operation = RELAYED_EVENTS[row.event_type][0]
            # each metadata update's row is an update of its own
            own = outbox_id if operation == "metadata_update" else 0
            recorded_keys.add((operation, ids[row.target], own))
    # One request per operation and ticket (or transfer), duplicates collapsing onto it;
    # one per row for metadata updates.
    bad_requests = await admin.fetchval(
        "SELECT count(*) FROM chain_requests WHERE tenant_id = $1", bad.tenant_id
    )
    assert bad_requests == len(recorded_keys)
    relayed = [row for _, expected, row in made if expected != "untouched"]
    assert result.claimed == len(good_rows) + len(relayed)
    assert result.recorded == len(good_rows) + sum(e == "recorded" for _, e, _ in made)
    assert await arq.zcard(queue) == len(good_rows) + len(recorded_keys)
