"""POST /v1/tickets/{id}/metadata: recorded, idempotent by its key, refused with a reason, and
carried out on chain through the client."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import asyncpg
import httpx
from solders.pubkey import Pubkey

from chainworker.chain import token2022
from chainworker.chain.rpc import SolanaRpc
from chainworker.client import ApiError, ChainworkerClient
from chainworker.localnet.process import LocalnetProcess
from tests.api.conftest import RunningApi, make_minted, new_tenant
from tests.helpers import Stack

BODY = {"fields": {"seat": "A-7", "uri": "https://moved.example/1.json"}, "remove": ["gate"]}


async def test_an_update_is_recorded_once_per_key_and_each_key_is_an_update_of_its_own(
    client: httpx.AsyncClient, pool: asyncpg.Pool, admin: asyncpg.Connection
) -> None:
    tenant = await new_tenant(pool, admin)
    ticket = tenant.seeded.ticket_ids[0]
    await make_minted(admin, [ticket])
    url = f"/v1/tickets/{ticket}/metadata"
    headers = tenant.post_headers("meta-1")
    first = await client.post(url, json=BODY, headers=headers)
    assert first.status_code == 202, first.text
    assert first.json()["operation"] == "metadata_update" and first.json()["created"]
    replay = await client.post(url, json=BODY, headers=headers)
    assert replay.status_code == 202 and replay.json() == first.json()
    assert replay.headers["idempotent-replayed"] == "true"
    reused = await client.post(url, json={"fields": {"seat": "B-1"}}, headers=headers)
    assert reused.status_code == 422
    assert reused.json()["type"] == "urn:chainworker:problem:idempotency-key-reused"
    second = await client.post(url, json=BODY, headers=tenant.post_headers())
    assert second.status_code == 202 and second.json()["created"]
    assert second.json()["request_id"] != first.json()["request_id"]

    rows = await admin.fetch(
        "SELECT id::text, changes::text, source FROM chain_requests WHERE ticket_id = $1"
        " ORDER BY seq", ticket,
    )
    assert [row["id"] for row in rows] == [first.json()["request_id"], second.json()["request_id"]]
    assert json.loads(rows[0]["changes"]) == {
        "fields": {"seat": "A-7", "uri": "https://moved.example/1.json"}, "remove": ["gate"],
    }
    status = await client.get(first.json()["status_url"], headers=tenant.auth())
    assert status.status_code == 200 and status.json()["changes"] == json.loads(rows[0]["changes"])


async def test_bad_bodies_other_tenants_and_states_the_rules_refuse_change_nothing(
    client: httpx.AsyncClient, pool: asyncpg.Pool, admin: asyncpg.Connection
) -> None:
    tenant = await new_tenant(pool, admin)
    other = await new_tenant(pool, admin)
    sold, minted, refunded = tenant.seeded.ticket_ids[:3]
    theirs = other.seeded.ticket_ids[0]
    await make_minted(admin, [minted, refunded, theirs])
    await admin.execute("UPDATE tickets SET status = 'refunded' WHERE id = $1", refunded)

    for body, why in (
        ({"fields": {"ticket_id": str(uuid.uuid4())}}, "ties the NFT to its ticket"),
        ({"remove": ["event_id"]}, "ties the NFT to its ticket"),
        ({"fields": {"symbol": "NEW"}}, "symbol"),
        ({"fields": {"note": "n" * 513}}, "at most 512"),
        ({"fields": {"seat": "a\u0000b"}}, "control character"),
        ({"fields": {}, "remove": []}, "at least one"),
        ({"remove": ["uri"]}, "cannot be removed"),
        ({"fields": ["seat"]}, "valid dictionary"),
        ({"fields": {"seat": 7}}, "valid string"),
        ({"fields": {"seat": "A"}, "extra": 1}, "Extra inputs"),
        ({"fields": {f"k{i}": "v" for i in range(17)}}, "at most 16"),
    ):
        response = await client.post(
            f"/v1/tickets/{minted}/metadata", json=body, headers=tenant.post_headers()
        )
        assert response.status_code == 422, (body, response.text)
        assert response.headers["content-type"] == "application/problem+json"
        assert why in json.dumps(response.json()), (body, response.json())

    elsewhere = await client.post(
        f"/v1/tickets/{theirs}/metadata", json=BODY, headers=tenant.post_headers()
    )
    assert elsewhere.status_code == 404
    assert elsewhere.json()["type"] == "urn:chainworker:problem:not-found"
    for ticket, code in ((sold, "not_minted"), (refunded, "status_not_allowed")):
        response = await client.post(
            f"/v1/tickets/{ticket}/metadata", json=BODY, headers=tenant.post_headers()
        )
        assert response.status_code == 409 and response.json()["code"] == code, response.text
    assert await admin.fetchval(
        "SELECT count(*) FROM chain_requests WHERE tenant_id = ANY($1::uuid[])",
        [tenant.id, other.id],
    ) == 0


async def test_the_client_updates_a_minted_ticket_on_chain(
    running_api: RunningApi,
    pool: asyncpg.Pool,
    admin: asyncpg.Connection,
    redis_url: str,
    localnet: LocalnetProcess,
    tmp_path: Path,
) -> None:
    tenant = await new_tenant(pool, admin, tickets=1)
    [ticket] = tenant.seeded.ticket_ids
    stack = Stack(
        db=running_api.db, redis_url=redis_url, rpc_urls=localnet.rpc_url,
        state_dir=tmp_path / "state", queue=running_api.settings.queue_name,
    )
    worker = stack.worker()
    try:
        async with ChainworkerClient(running_api.url, tenant.token) as api:
            minted = await api.mint(ticket)
            assert (await api.wait_for_request(minted.request_id, timeout_seconds=60,
                                               poll_seconds=0.2))["status"] == "confirmed"
            updates = [
                await api.update_metadata(ticket, {"seat": "A-7", "section": "Balcony"}),
                await api.update_metadata(ticket, {"seat": "A-8"}, ["section"]),
            ]
            done = [
                await api.wait_for_request(u.request_id, timeout_seconds=60, poll_seconds=0.2)
                for u in updates
            ]
            assert [d["status"] for d in done] == ["confirmed", "confirmed"], done
            assert done[0]["slot"] < done[1]["slot"]
            try:
                await api.update_metadata(ticket, {"ticket_id": "forged"})
            except ApiError as refused:
                assert refused.status == 422
            else:
                raise AssertionError("a forged ticket_id was accepted")
            chain = await api.ticket_chain(ticket)
    finally:
        worker.stop()
    async with SolanaRpc([localnet.rpc_url]) as rpc:
        account = await rpc.get_account(Pubkey.from_string(chain["token_mint"]))
    assert account is not None
    found = token2022.parse_mint(account.data).metadata
    assert found is not None
    assert (found.field("seat"), found.field("section")) == ("A-8", None)
    assert found.field("ticket_id") == str(ticket)
    assert account.lamports >= token2022.rent_exempt_lamports(len(account.data))
    assert [r["operation"] for r in chain["requests"]][:2] == ["metadata_update"] * 2
