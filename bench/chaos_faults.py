"""The campaign's faults: the seeded schedule, and how each is brought about and cleared."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from chainworker.client import ChainworkerClient
from chaos_load import ask_api, owner_execute
from chaos_stack import Ask, Campaign, Config

FINAL = ("confirmed", "failed", "expired", "refused", "abandoned")
TERMINATE_SQL = """SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
                    WHERE datname = $1 AND usename = 'chainworker_app'"""

@dataclass(frozen=True)
class Fault:
    at: float  # seconds after the load starts
    kind: str
    seconds: float  # how long it lasts (0: a moment)
    detail: str = ""

    def describe(self) -> str:
        lasting = f" for {self.seconds:.0f} s" if self.seconds else ""
        return f"{self.at:6.1f} s  {self.kind}{lasting}{f' ({self.detail})' if self.detail else ''}"


def schedule(config: Config) -> list[Fault]:
    """The faults, in order: each localnet phase in its own window, the process and
    database faults at seeded random moments among them."""
    rng = random.Random(config.seed)
    s = config.scale
    phases = [
        ("drop_30", 40 * s, "30% of sends accepted but never landed"),
        ("rate_storm", 40 * s, "half the requests of endpoints 0 and 1: HTTP 429, then 503"),
        ("stalls", 30 * s, "a fifth of endpoint 0's requests held 2 s"),
        ("freeze_then_warp", max(3.0, 20 * s), "no blocks, then 200 blocks at once"),
        ("fork_unconfirmed", 0, "every block above the confirmed slot loses its transactions"),
        ("endpoint_down", 60 * s, "endpoint 1 refuses connections"),
        ("lagging", 40 * s, "endpoint 2 answers as of 40 slots ago"),
        ("garbage", 40 * s, "5% of endpoint 0's answers are garbage of every kind"),
    ]
    rng.shuffle(phases)
    faults: list[Fault] = []
    at = 5.0 * s + 2.0
    for kind, seconds, detail in phases:
        faults.append(Fault(round(at, 1), kind, round(seconds, 1), detail))
        at += seconds + rng.uniform(5, 15) * s + 1.0
    end = at
    moments = [
        ("terminate_backends", 0, "pg_terminate_backend of every chainworker connection"),
        ("postgres_restart", 0, "a fast shutdown and a start of the scratch server"),
        ("redis_flushall", 0, "the queue and every job gone"),
        ("redis_restart", 0, "the scratch Valkey stopped, started again empty"),
    ]
    moments += [("kill_worker", 0, "SIGKILL, started again after 1-3 s")] * config.kills
    for kind, seconds, detail in moments:
        faults.append(Fault(round(rng.uniform(2.0, end), 1), kind, seconds, detail))
    return sorted(faults, key=lambda f: f.at)


async def apply_fault(campaign: Campaign, fault: Fault, rng: random.Random) -> None:
    """Bring the fault about; for a lasting one, hold it for its window, then clear it."""
    node = campaign.localnet
    kind = fault.kind
    campaign.note(f"fault: {fault.kind}{f' ({fault.detail})' if fault.detail else ''}")
    if kind == "kill_worker":
        await campaign.fleet.kill_one(rng)
    elif kind == "terminate_backends":
        [row] = await owner_execute(campaign, TERMINATE_SQL, campaign.database)
        campaign.note(f"  {row['count']} connections terminated")
    elif kind == "postgres_restart":
        await asyncio.to_thread(campaign.postgres.restart)
    elif kind == "redis_flushall":
        client = Redis.from_url(campaign.valkey.url)
        try:
            await client.flushall()
        finally:
            await client.aclose()
    elif kind == "redis_restart":
        await asyncio.to_thread(campaign.valkey.stop)
        await asyncio.sleep(2.0)
        await asyncio.to_thread(campaign.valkey.start)
    elif kind == "fork_unconfirmed":
        node.set_faults(fork_unconfirmed=True)
    else:
        on, off = LOCALNET_PHASES[kind]
        for endpoint, faults in on:
            node.set_faults(endpoint=endpoint, **faults)
        if kind == "rate_storm":
            await asyncio.sleep(fault.seconds / 2)
            for endpoint in (0, 1):
                node.set_faults(endpoint=endpoint, http_error_status=503)
            await asyncio.sleep(fault.seconds / 2)
        elif kind == "freeze_then_warp":
            await asyncio.sleep(fault.seconds)
            node.set_faults(clock_frozen=False)
            node.set_faults(warp_slots=200)
        else:
            await asyncio.sleep(fault.seconds)
        for endpoint, faults in off:
            node.set_faults(endpoint=endpoint, **faults)
    campaign.note(f"cleared: {fault.kind}")
    await probe(campaign, fault)


# kind -> (faults set at the start [(endpoint, fields)], faults set at the end)
Settings = list[tuple[int, dict[str, Any]]]
LOCALNET_PHASES: dict[str, tuple[Settings, Settings]] = {
    "drop_30": ([(0, {"drop_rate": 0.3})], [(0, {"drop_rate": 0.0})]),
    "rate_storm": (
        [(e, {"http_error_rate": 0.5, "http_error_status": 429}) for e in (0, 1)],
        [(e, {"http_error_rate": 0.0}) for e in (0, 1)],
    ),
    "stalls": ([(0, {"stall_rate": 0.2, "stall_seconds": 2.0})], [(0, {"stall_rate": 0.0})]),
    "freeze_then_warp": ([(0, {"clock_frozen": True})], []),
    "endpoint_down": ([(1, {"down": True})], [(1, {"down": False})]),
    "lagging": ([(2, {"lag_slots": 40})], [(2, {"lag_slots": 0})]),
    "garbage": ([(0, {"garbage_rate": 0.05})], [(0, {"garbage_rate": 0.0})]),
}


async def probe(campaign: Campaign, fault: Fault) -> None:
    """Time from a fault's end to full recovery: a fresh mint asked right then, until confirmed."""
    tenant = campaign.tenants[0]
    [row] = await owner_execute(
        campaign,
        """INSERT INTO tickets (tenant_id, event_id, user_id, status, price_cents, price,
                                face_value, purchased_at)
           SELECT tenant_id, event_id, user_id, 'sold', 0, 0, 0, now()
             FROM tickets WHERE id = $1 RETURNING id""",
        tenant.tickets[0],
    )
    ticket = row["id"]
    started = time.monotonic()
    ask = Ask("api", "mint", tenant.id, ticket)
    campaign.asks.append(ask)
    async with ChainworkerClient(campaign.fleet.api_url, tenant.token, max_attempts=3) as client:
        await ask_api(campaign, client, ask)
    deadline = started + 600
    while time.monotonic() < deadline:
        rows = await owner_execute(
            campaign, "SELECT status FROM chain_requests WHERE id = $1", ask.request_id
        )
        if rows and rows[0]["status"] in FINAL:
            campaign.probes.append((fault.kind, fault.at, time.monotonic() - started))
            return
        await asyncio.sleep(0.25)
    campaign.errors.append(f"no recovery within 600 s after {fault.kind}")


async def run_faults(campaign: Campaign, faults: list[Fault], rng: random.Random) -> None:
    """Each fault at its moment; lasting ones run side by side with the next ones."""
    running: list[asyncio.Task[None]] = []
    start = time.monotonic()
    for fault in faults:
        await asyncio.sleep(max(0.0, start + fault.at - time.monotonic()))
        running.append(asyncio.create_task(apply_fault(campaign, fault, rng)))
    for task in running:
        try:
            await task
        except Exception as error:  # a fault that could not be brought about is a finding
            campaign.errors.append(f"fault failed: {type(error).__name__}: {error}")


async def watch_oldest_live(campaign: Campaign, stop: asyncio.Event) -> None:
    """The oldest live attempt's age, sampled through the run (the alert's figure)."""
    while not stop.is_set():
        with contextlib.suppress(Exception):
            rows = await owner_execute(
                campaign,
                """SELECT coalesce(extract(epoch FROM now() - min(submitted_at)), 0) AS age
                     FROM pending_transactions WHERE status IN ('pending', 'confirming')""",
            )
            campaign.oldest_live_seen = max(campaign.oldest_live_seen, float(rows[0]["age"]))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 2.0)
