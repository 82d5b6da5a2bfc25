"""The worker's own /metrics: what the dashboards and alerts read, from a real run."""

from __future__ import annotations

import asyncpg
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from chainworker.localnet.process import free_port
from tests.helpers import Stack, wait_for
from tests.jobs.test_lifecycle_e2e import settled


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


async def test_worker_serves_metrics_of_its_work(stack: Stack, admin: asyncpg.Connection) -> None:
    seeded = stack.cli_json("seed", "--tickets", "3")
    tenant = seeded["tenant_id"]
    port = free_port()
    worker = stack.worker(metrics_port=port)
    url = f"http://127.0.0.1:{port}/metrics"
    try:
        stack.cli("enqueue", "mint", "--tenant", tenant, "--ticket", "-",
                  stdin="\n".join(seeded["ticket_ids"]))
        await wait_for(lambda: settled(admin, tenant, 3), 60, "three mints")

        async def gauges_exported() -> bool:
            async with httpx.AsyncClient(timeout=5) as http:
                try:
                    text = (await http.get(url)).text
                except httpx.HTTPError:
                    return False
            return "chainworker_tx_oldest_live_seconds" in text

        # The database gauges come from whichever worker holds the advisory lock: this one.
        await wait_for(gauges_exported, 30, "the database gauges")
        async with httpx.AsyncClient(timeout=5) as http:
            found = samples((await http.get(url)).text)
    finally:
        worker.stop()
    assert found[("chainworker_tx_submitted_total", (("op", "mint"),))] == 3
    assert found[("chainworker_tx_confirmed_total", (("op", "mint"),))] == 3
    assert found[("chainworker_tx_confirmation_seconds_count", (("op", "mint"),))] == 3
    assert found[("chainworker_tx_landing_slots_count", ())] == 3
    assert found[("chainworker_fees_lamports_total", (("op", "mint"),))] > 3 * 5_000
    assert {("status", "pending"), ("status", "confirming")} <= {
        labels[0] for name, labels in found if name == "chainworker_tx_live"
    }
    assert found[("chainworker_block_height", ())] > 0
    assert found[("chainworker_job_seconds_count", (("job", "mint_ticket"),))] >= 3
    assert found[("chainworker_job_seconds_count", (("job", "confirm_round"),))] >= 1
    assert found[("chainworker_job_seconds_count", (("job", "sweep"),))] >= 1
    assert any(name == "chainworker_rpc_request_seconds_count" for name, _ in found)
    assert not any("tenant" in key for _, labels in found for key, _ in labels), (
        "no tenant ids in labels"
    )


pytestmark = pytest.mark.timeout(120)
