"""Bearer tokens: missing, malformed, wrong, expired and revoked tokens are 401; the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from datetime import timedelta

import asyncpg
import httpx

from chainworker.api.tokens import issue_token, revoke_token
from tests.api.conftest import RunningApi, new_tenant


async def _status(client: httpx.AsyncClient, path: str, token: str | None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    return await client.get(path, headers=headers)


async def test_bad_tokens_are_401_problems(
    client: httpx.AsyncClient, pool: asyncpg.Pool, admin: asyncpg.Connection
) -> None:
    tenant = await new_tenant(pool, admin, tickets=1)
    path = f"/v1/tickets/{tenant.seeded.ticket_ids[0]}/chain"
    assert (await _status(client, path, tenant.token)).status_code == 200

    good_id, _, _secret = tenant.token.removeprefix("cwt_").partition("_")
    expiring = await issue_token(pool, tenant.id, "short", ttl=timedelta(hours=1))
    await admin.execute(
        "UPDATE api_tokens SET created_at = now() - interval '2 hours',"
        " expires_at = now() - interval '1 second' WHERE id = $1",
        expiring.token_id,
    )
    revoked = await issue_token(pool, tenant.id, "gone")
    assert await revoke_token(admin, revoked.token_id) == tenant.id

    for token in (
        None,
        "not-a-token",
        f"cwt_{good_id}_{'A' * 43}",  # right id, wrong secret
        f"cwt_{uuid.uuid4().hex}_{_secret}",  # unknown id
        tenant.token + "x",
        expiring.token,
        revoked.token,
    ):
        response = await _status(client, path, token)
        assert response.status_code == 401, token
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["type"] == "urn:chainworker:problem:unauthorized"
        assert response.headers["www-authenticate"].startswith("Bearer")

    no_auth_post = await client.post(
        f"/v1/tickets/{tenant.seeded.ticket_ids[0]}/mint", headers={"Idempotency-Key": "k"}
    )
    assert no_auth_post.status_code == 401


async def test_service_token_cannot_vote(
    client: httpx.AsyncClient, pool: asyncpg.Pool, admin: asyncpg.Connection
) -> None:
    tenant = await new_tenant(pool, admin, tickets=1)
    response = await client.post(
        f"/v1/events/{tenant.seeded.event_id}/revocations",
        json={"reason": "revoke"},
        headers=tenant.post_headers(),
    )
    assert response.status_code == 403
    assert response.json()["type"] == "urn:chainworker:problem:forbidden"


def _cli(running_api: RunningApi, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": "/usr/bin:/bin",
        "DATABASE_URL": running_api.db.app_dsn,
        "DATABASE_ADMIN_URL": running_api.db.admin_dsn,
        "STATE_DIR": str(running_api.settings.state_dir),
    }
    return subprocess.run(
        [sys.executable, "-m", "chainworker", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


async def test_token_cli_issues_and_revokes(
    client: httpx.AsyncClient, pool: asyncpg.Pool, running_api: RunningApi,
    admin: asyncpg.Connection,
) -> None:
    tenant = await new_tenant(pool, admin, tickets=1)
    made = _cli(
        running_api,
        "token",
        "create",
        "--tenant",
        str(tenant.id),
        "--name",
        "svc",
        "--ttl",
        "30d",
        "--json",
    )
    assert made.returncode == 0, made.stderr
    issued = json.loads(made.stdout)
    assert issued["token"].startswith("cwt_") and issued["expires_at"]
    path = f"/v1/tickets/{tenant.seeded.ticket_ids[0]}/chain"
    assert (await _status(client, path, issued["token"])).status_code == 200
    stored = await pool.fetchval(
        "SELECT count(*) FROM chainworker_authenticate($1)", uuid.UUID(issued["token_id"])
    )
    assert stored == 1

    gone = _cli(running_api, "token", "revoke", issued["token_id"])
    assert gone.returncode == 0, gone.stderr
    assert (await _status(client, path, issued["token"])).status_code == 401

    again = _cli(running_api, "token", "revoke", issued["token_id"])
    assert again.returncode == 2 and "no live token" in again.stderr
    needs_user = _cli(
        running_api, "token", "create", "--tenant", str(tenant.id), "--name", "a", "--admin"
    )
    assert needs_user.returncode == 2 and "--user" in needs_user.stderr
    bad_ttl = _cli(
        running_api, "token", "create", "--tenant", str(tenant.id), "--name", "a", "--ttl", "soon"
    )
    assert bad_ttl.returncode == 2 and "ttl" in bad_ttl.stderr
