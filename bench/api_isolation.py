"""Does a 404 tell a missing id from another tenant's? Latency of both, side by side.

Run: python bench/api_isolation.py [--requests 3000]

Creates a scratch database (migrated; tenants A and B, a token each, one of B's requests),
starts `chainworker api` as a subprocess and sends, over one keep-alive connection with
A's token, GET /v1/requests/{id} alternately for an id that exists nowhere and for B's
request. Both must answer 404 in the same time: the attempt on B's is recorded off the
request path. Prints the median and p99 of each and their ratio; drops the database.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import time
import uuid

import asyncpg
import httpx

from api_mint import free_port, start_api, wait_ready
from chainworker import services
from chainworker.api.tokens import issue_token
from chainworker.config import load_settings
from chainworker.db.seed import seed_tenant
from scratch import scratch_database


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


async def measure(
    server: services.PgServer, name: str, redis_url: str, requests: int
) -> dict[str, list[float]]:
    """Seconds per 404, by kind, against an API started on the scratch database."""
    owner = await asyncpg.connect(server.admin_dsn(name))
    try:
        a = await seed_tenant(owner, tickets=1, tenant_name="A")
        b = await seed_tenant(owner, tickets=1, tenant_name="B")
    finally:
        await owner.close()
    pool = await asyncpg.create_pool(server.app_dsn(name), min_size=1, max_size=2)
    assert pool is not None
    token_a = (await issue_token(pool, a.tenant_id, "bench")).token
    token_b = (await issue_token(pool, b.tenant_id, "bench")).token
    await pool.close()
    env = {
        **os.environ, "DATABASE_URL": server.app_dsn(name), "REDIS_URL": redis_url,
        "QUEUE_NAME": f"cwbench:{name}:queue", "LOG_LEVEL": "ERROR",
    }
    port = free_port()
    process = start_api(port, 1, env)
    try:
        url = f"http://127.0.0.1:{port}"
        await wait_ready(url, process)
        async with httpx.AsyncClient(base_url=url) as client:
            made = await client.post(
                f"/v1/tickets/{b.ticket_ids[0]}/mint",
                headers={"Authorization": f"Bearer {token_b}", "Idempotency-Key": "bench"},
            )
            other = made.json()["request_id"]
            timings: dict[str, list[float]] = {"missing": [], "other_tenant": []}
            headers = {"Authorization": f"Bearer {token_a}"}
            for i in range(requests * 2 + 200):
                kind = "missing" if i % 2 else "other_tenant"
                target = uuid.uuid4() if kind == "missing" else other
                started = time.perf_counter()
                response = await client.get(f"/v1/requests/{target}", headers=headers)
                elapsed = time.perf_counter() - started
                assert response.status_code == 404, response.text
                if i >= 200:  # after a warm-up
                    timings[kind].append(elapsed)
        return timings
    finally:
        process.terminate()
        process.wait(timeout=15)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=3000, help="404s of each kind")
    args = parser.parse_args()

    redis = await services.resolve_redis(load_settings())
    async with scratch_database("cw_bench_iso") as (server, name, _origin):
        timings = await measure(server, name, redis.url, args.requests)

    result: dict[str, object] = {"requests_each": args.requests}
    for kind, values in timings.items():
        result[f"{kind}_p50_ms"] = round(statistics.median(values) * 1000, 3)
        result[f"{kind}_p99_ms"] = round(percentile(values, 0.99) * 1000, 3)
    result["p50_ratio_other_to_missing"] = round(
        statistics.median(timings["other_tenant"]) / statistics.median(timings["missing"]), 3
    )
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
