"""A real Prometheus (Debian's `prometheus`) scrapes a running worker and API with deploy/'s
alert rules loaded: transactions made to expire on the localnet fire
ChainworkerTransactionsExpired in Prometheus' own alerts API, and every PromQL expression
of the Grafana dashboard evaluates against it and returns series."""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import yaml

from chainworker.localnet.process import LocalnetProcess
from tests.helpers import Stack, wait_for
from tests.jobs.test_lifecycle_e2e import request_statuses, settled
from tests.plugins import debian

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "chainworker.json"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def dashboard_expressions() -> list[tuple[str, str]]:
    """(panel title, expr) of every target of every panel, rows included."""
    found: list[tuple[str, str]] = []

    def walk(panels: list[dict[str, Any]]) -> None:
        for panel in panels:
            walk(panel.get("panels", []))
            found.extend((panel["title"], t["expr"]) for t in panel.get("targets", []))

    walk(json.loads(DASHBOARD.read_text())["panels"])
    return found


@pytest.fixture
def prometheus_binary() -> str:
    found = debian.binary_or_skip("prometheus", "prometheus",
                                  "the rules and dashboard are checked statically only")
    return found


def start_prometheus(binary: str, directory: Path, api: str, worker: str) -> tuple[
    subprocess.Popen[bytes], str
]:
    """deploy/'s rules, the scrape jobs the rules expect, every second instead of 15 s."""
    shutil.copy(DEPLOY / "prometheus" / "alerts.yml", directory / "alerts.yml")
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    config["global"].update(scrape_interval="1s", evaluation_interval="1s")
    targets = {"chainworker-api": api, "chainworker-worker": worker}
    config["scrape_configs"] = [
        {**job, "static_configs": [{"targets": [targets[job["job_name"]]]}]}
        for job in config["scrape_configs"] if job["job_name"] in targets
    ]
    (directory / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = _free_port()
    log = (directory / "prometheus.log").open("wb")
    process = subprocess.Popen(
        [binary, f"--config.file={directory / 'prometheus.yml'}",
         f"--storage.tsdb.path={directory / 'data'}", f"--web.listen-address=127.0.0.1:{port}"],
        stdout=log, stderr=subprocess.STDOUT,
    )
    return process, f"http://127.0.0.1:{port}"


@pytest.fixture
def api_process(stack: Stack) -> Iterator[str]:
    port = _free_port()
    log = (stack.state_dir / "api.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "chainworker", "api", "--host", "127.0.0.1", "--port", str(port)],
        env=stack.env(), stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        yield f"127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=15)


async def query(http: httpx.AsyncClient, expr: str) -> list[dict[str, Any]]:
    # Prometheus answers a plain-text 503 until its storage is ready: raised as an
    # HTTPError, so that a wait retries it instead of failing on the body.
    response = (await http.get("/api/v1/query", params={"query": expr})).raise_for_status()
    answer = response.json()
    assert answer["status"] == "success", (expr, answer)
    result: list[dict[str, Any]] = answer["data"]["result"]
    return result


@pytest.mark.slow
async def test_prometheus_fires_on_expiries_and_the_dashboard_evaluates(
    stack: Stack, admin: asyncpg.Connection, localnet_faults: LocalnetProcess,
    prometheus_binary: str, api_process: str, tmp_path: Path,
) -> None:
    metrics_port = _free_port()
    # One attempt per request: the first expiry is final and counted. Two fee payers, so
    # that their panel has balances to show.
    worker = stack.worker(metrics_port=metrics_port, MAX_RETRIES="0", FEE_PAYER_COUNT="2")
    prometheus, url = start_prometheus(prometheus_binary, tmp_path, api_process,
                                       f"127.0.0.1:{metrics_port}")
    try:
        async with httpx.AsyncClient(base_url=url, timeout=10) as http:

            async def ready() -> bool:
                try:
                    return (await http.get("/-/ready")).status_code == 200
                except httpx.HTTPError:
                    return False

            await wait_for(ready, 60, "Prometheus ready")

            async def both_scraped() -> bool:
                try:
                    up = await query(http, "up")
                except httpx.HTTPError:
                    return False
                return sorted((s["metric"]["job"], s["value"][1]) for s in up) == [
                    ("chainworker-api", "1"), ("chainworker-worker", "1"),
                ]

            await wait_for(both_scraped, 60, "Prometheus scraping the worker and the API")

            # Every send accepted and never landed: each attempt's blockhash runs out.
            seeded = stack.cli_json("seed", "--tickets", "8", "--users", "2")
            tenant, tickets = seeded["tenant_id"], seeded["ticket_ids"]
            localnet_faults.set_faults(drop_rate=1.0)
            stack.cli("enqueue", "mint", "--tenant", tenant, "--ticket", "-",
                      stdin="\n".join(tickets[:4]))
            await wait_for(lambda: settled(admin, tenant, 4), 90, "four expiries")
            assert await request_statuses(admin, tenant) == {"expired": 4}

            async def firing() -> bool:
                alerts = (await http.get("/api/v1/alerts")).json()["data"]["alerts"]
                return any(
                    a["labels"]["alertname"] == "ChainworkerTransactionsExpired"
                    and a["labels"].get("op") == "mint" and a["state"] == "firing"
                    for a in alerts
                )

            await wait_for(firing, 60, "ChainworkerTransactionsExpired firing")

            # A healthy run after it, through a few seconds of an endpoint answering 503
            # (retried): mints and a burn, so that every panel has something to show.
            localnet_faults.clear_faults()
            localnet_faults.set_faults(http_error_rate=0.3, http_error_status=503)
            stack.cli("enqueue", "mint", "--tenant", tenant, "--ticket", "-",
                      stdin="\n".join(tickets[4:]))
            await asyncio.sleep(3)
            localnet_faults.clear_faults()
            await wait_for(lambda: settled(admin, tenant, 8), 60, "four mints")
            stack.cli("enqueue", "burn", "--tenant", tenant, "--ticket", tickets[4],
                      "--reason", "refund")
            await wait_for(lambda: settled(admin, tenant, 9), 60, "a burn")
            await wait_for(_scraped_after(http), 30, "a scrape after the run")

            empty, broken = [], []
            for title, expr in dashboard_expressions():
                answer = (await http.get("/api/v1/query", params={"query": expr})).json()
                if answer["status"] != "success":
                    broken.append((title, expr, answer.get("error")))
                elif not answer["data"]["result"]:
                    empty.append((title, expr))
            assert not broken, broken
            assert not empty, empty
    finally:
        worker.stop()
        prometheus.terminate()
        prometheus.wait(timeout=15)


def _scraped_after(http: httpx.AsyncClient) -> Any:
    """A check that passes once the worker's confirmed counter has reached Prometheus."""

    async def check() -> bool:
        found = await query(http, 'sum(chainworker_tx_confirmed_total{op="burn"})')
        return bool(found) and float(found[0]["value"][1]) >= 1

    return check
