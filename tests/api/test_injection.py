"""SQL, control characters and oversized strings in every text the API stores or looks up:
the Idempotency-Key and Authorization headers, path ids, the burn reason, the revocation
reason and comment, the vote comment, the wallet's address and user.

A value the API refuses is a clear 4xx in problem+json and changes no row of any table. A
value that is valid, however much it looks like SQL, is stored as the text it is; the
tables keep their rows, and another tenant's rows never change.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import asyncpg
import httpx
import pytest

from chainworker.api.problems import PROBLEM_MEDIA_TYPE
from tests.api.conftest import Tenant, make_minted, new_tenant
from tests.snapshot import changed, table_digests

SQL = [
    "'; DROP TABLE tickets; --",
    "' OR 1=1 --",
    "Robert'); DELETE FROM chain_requests; --",
    "1; UPDATE tickets SET status = 'void'",
    "$1",
    "\\'; SELECT pg_sleep(5); --",
]
HUGE = "x" * 60_000  # under the body limit: refused by the field's own bound


@dataclass(frozen=True)
class World:
    tenant: Tenant
    bystander: Tenant

    @property
    def admin_token(self) -> str:
        return self.tenant.admin_tokens[0]


@pytest.fixture(scope="module")
async def world(pool: asyncpg.Pool, admin: asyncpg.Connection) -> World:
    tenant = await new_tenant(pool, admin, tickets=3, users=3)
    await make_minted(admin, tenant.seeded.ticket_ids[1:])
    bystander = await new_tenant(pool, admin, tickets=2)
    return World(tenant, bystander)


def _headers(world: World, key: str | None = None, **extra: str) -> dict[str, str]:
    return {**world.tenant.post_headers(key, token=world.admin_token), **extra}


def _refusals(world: World) -> list[tuple[str, str, str, dict[str, str], Any]]:
    """(what, method, path, headers, JSON body or raw bytes) that must be refused."""
    t = world.tenant.seeded
    sold, minted, event = t.ticket_ids[0], t.ticket_ids[1], t.event_id
    user = str(t.user_ids[0])
    cases: list[tuple[str, str, str, dict[str, str], Any]] = []
    for text in [*SQL, HUGE, "\x00", "a\nb", "\u0085", "x" * 501]:
        shown = text[:20]
        cases += [
            (f"burn reason {shown!r}", "POST", f"/v1/tickets/{minted}/burn", _headers(world),
             {"reason": text}),
            (f"revocation reason {shown!r}", "POST", f"/v1/events/{event}/revocations",
             _headers(world), {"reason": text}),
            (f"wallet address {shown!r}", "POST", "/v1/wallets", _headers(world),
             {"user_id": user, "address": text}),
            (f"wallet user {shown!r}", "POST", "/v1/wallets", _headers(world),
             {"user_id": text, "address": "9xQeWvG816bUx9EPjHmaT23yvVM2ZWbrrpZb9PusVFin"}),
            (f"ticket id {shown!r}", "GET", f"/v1/tickets/{_path(text)}/chain",
             world.tenant.auth(), None),
            (f"request id {shown!r}", "GET", f"/v1/requests/{_path(text)}", world.tenant.auth(),
             None),
            (f"signature {shown!r}", "GET", f"/v1/transactions/{_path(text)}",
             world.tenant.auth(), None),
            (f"transfer id {shown!r}", "POST", f"/v1/transfers/{_path(text)}/execute",
             _headers(world), None),
            (f"event id {shown!r}", "POST", f"/v1/events/{_path(text)}/revocations",
             _headers(world), {}),
            (f"revocation id {shown!r}", "POST",
             f"/v1/events/{event}/revocations/{_path(text)}/approvals", _headers(world), {}),
            (f"token {shown!r}", "GET", f"/v1/tickets/{sold}/chain",
             {"Authorization": f"Bearer {_header(text)}"}, None),
        ]
        if text in ("\x00", "a\nb", "\u0085", "x" * 501, HUGE):  # not printable, or too long
            cases += [
                (f"revocation comment {shown!r}", "POST", f"/v1/events/{event}/revocations",
                 _headers(world), {"comment": text}),
                (f"vote comment {shown!r}", "POST",
                 f"/v1/events/{event}/revocations/{uuid.uuid4()}/rejections", _headers(world),
                 {"comment": text}),
            ]
        key = _header(text)
        if " " in key or len(key) > 255:  # else a valid key, quotes and all
            cases.append((f"Idempotency-Key {shown!r}", "POST", f"/v1/tickets/{sold}/mint",
                          _headers(world, key), None))
    cases += [
        ("a body over the limit", "POST", f"/v1/tickets/{minted}/burn", _headers(world),
         {"reason": "revoke", "pad": "x" * 2_000_000}),
        ("a lone surrogate", "POST", f"/v1/events/{event}/revocations", _headers(world),
         b'{"comment": "\\ud800"}'),
        ("bytes that are not UTF-8", "POST", f"/v1/events/{event}/revocations",
         _headers(world), b'{"comment": "\xff\xfe"}'),
        ("a token of 100,000 characters", "GET", f"/v1/tickets/{sold}/chain",
         {"Authorization": "Bearer cwt_" + "a" * 100_000}, None),
        ("an id of 8,000 characters", "GET", f"/v1/tickets/{'1' * 8000}/chain",
         world.tenant.auth(), None),
    ]
    return cases


def _path(text: str) -> str:
    # What a client sends for the text: percent-encoded (an empty id is another route).
    return quote(text[:2000], safe="") or "-"


def _header(text: str) -> str:
    # Header values are latin-1 on the wire and cannot hold CR, LF or NUL.
    return "".join(c if " " <= c <= "~" else "?" for c in text) or "?"


async def _call(
    client: httpx.AsyncClient, method: str, path: str, headers: dict[str, str], body: Any
) -> httpx.Response:
    if isinstance(body, bytes):
        return await client.request(
            method, path, headers={**headers, "Content-Type": "application/json"}, content=body
        )
    return await client.request(method, path, headers=headers, json=body)


async def test_refused_values_are_a_clear_4xx_and_change_no_row(
    client: httpx.AsyncClient, admin: asyncpg.Connection, world: World
) -> None:
    before = await table_digests(admin)
    for what, method, path, headers, body in _refusals(world):
        answer = await _call(client, method, path, headers, body)
        assert 400 <= answer.status_code < 500, (what, answer.status_code, answer.text[:300])
        assert answer.headers["content-type"].startswith(PROBLEM_MEDIA_TYPE), what
        problem = answer.json()
        assert problem["status"] == answer.status_code and problem["type"], (what, problem)
        assert len(answer.content) < 20_000, (what, "the answer echoes the value whole")
    assert not changed(before, await table_digests(admin))


async def test_valid_values_that_look_like_sql_are_stored_as_text(
    client: httpx.AsyncClient, admin: asyncpg.Connection, world: World
) -> None:
    t = world.tenant.seeded
    everything = await table_digests(admin)
    bystander = await table_digests(admin, world.bystander.id)
    tickets_before = await admin.fetchval("SELECT count(*) FROM tickets")

    # A key of printable ASCII is a key, quotes and all; the same key replays the answer.
    key = "'OR'1'='1;--"
    first = await client.post(f"/v1/tickets/{t.ticket_ids[0]}/mint", headers=_headers(world, key))
    again = await client.post(f"/v1/tickets/{t.ticket_ids[0]}/mint", headers=_headers(world, key))
    assert first.status_code == again.status_code == 202, first.text
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert again.json() == first.json()
    stored = await admin.fetchval(
        "SELECT count(*) FROM idempotency_keys WHERE tenant_id = $1 AND idempotency_key = $2",
        world.tenant.id, key,
    )
    assert stored == 1

    comment, vote = SQL[0], SQL[2]
    made = await client.post(f"/v1/events/{t.event_id}/revocations", headers=_headers(world),
                             json={"reason": "refund", "comment": comment})
    assert made.status_code == 201, made.text
    revocation = made.json()["revocation_id"]
    voted = await client.post(
        f"/v1/events/{t.event_id}/revocations/{revocation}/rejections",
        headers=_headers(world), json={"comment": vote},
    )
    assert voted.status_code == 200, voted.text
    payload = await admin.fetchval(
        "SELECT payload FROM multisig_approval_requests WHERE id = $1", uuid.UUID(revocation)
    )
    assert json.loads(payload)["comment"] == comment
    assert await admin.fetchval(
        "SELECT reason FROM multisig_rejections WHERE request_id = $1", uuid.UUID(revocation)
    ) == vote

    assert await admin.fetchval("SELECT count(*) FROM tickets") == tickets_before
    assert await table_digests(admin, world.bystander.id) == bystander
    assert changed(everything, await table_digests(admin)) <= {
        "chain_requests", "idempotency_keys", "multisig_approval_requests", "multisig_rejections",
    }
