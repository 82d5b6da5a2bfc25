"""The reliability campaign: every fault at once, a hostile RPC, and a report of figures.

Run: python bench/chaos.py [--tickets 5000] [--seed 1] [--workers 3]
                           [--report bench/results/chaos.md]

On a scratch PostgreSQL and a scratch Valkey of its own (embedded, in a temporary
directory: never the machine's servers, which it restarts and flushes), a localnet with
three endpoints over one ledger, three worker processes and the API:

- load: three tenants; mints, resale chains of transfers and burns (revoke and refund),
  asked through the API, through the outbox (as the ticket service writes it) and through
  the CLI, all at once;
- faults on a seeded schedule, printed at the start: worker SIGKILLs, every chainworker
  connection terminated, a PostgreSQL restart, a Redis FLUSHALL and a Redis restart, and
  localnet phases (drops, a 429/503 storm, stalls, a frozen clock then a warp, a fork of
  what was not confirmed, one endpoint down, one lagging, garbage answers);
- then, checked independently from the database and from the chain: every accepted request
  is terminal and none is lost; nothing executed twice; the database equals the chain for
  every ticket; no live attempt is left; every status change has its history row and each
  outcome exactly one outbox event; spending equals what was paid on chain; and the time
  from each fault to full recovery.

Exits 1 when an invariant fails. Writes the schedule, the figures and the machine to the
report. `tests/test_chaos.py` runs a bounded slice of it (`pytest -m chaos`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import random
import shutil
import tempfile
import time
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

from chaos_checks import Check, check, wait_settled
from chaos_faults import Fault, run_faults, schedule, watch_oldest_live
from chaos_load import drive_load
from chaos_stack import Campaign, Config, setup

REPO = Path(__file__).resolve().parents[1]


async def campaign_run(config: Config) -> tuple[bool, str]:
    """Run the campaign; (every invariant held, the report in Markdown)."""
    rng = random.Random(config.seed)
    faults = schedule(config)
    print(f"schedule (seed {config.seed}):", flush=True)
    for fault in faults:
        print(f"  {fault.describe()}", flush=True)
    workdir = Path(tempfile.mkdtemp(prefix="chainworker-chaos-"))
    began = time.monotonic()
    campaign = await setup(config, workdir)
    try:
        campaign.started = time.monotonic()
        stop = asyncio.Event()
        watcher = asyncio.create_task(watch_oldest_live(campaign, stop))
        supervisor = asyncio.create_task(campaign.fleet.supervise())
        window = max(f.at + f.seconds for f in faults)
        await asyncio.gather(
            drive_load(campaign, random.Random(rng.random()), window * 0.7),
            run_faults(campaign, faults, random.Random(rng.random())),
        )
        campaign.localnet.clear_faults()
        campaign.note("every fault cleared; waiting for every request to settle")
        settled = await wait_settled(campaign)
        campaign.note(f"settled {settled:.0f} s after the last fault")
        stop.set()
        await watcher
        checks = await check(campaign)
        supervisor.cancel()
    finally:
        campaign.fleet.stop()
        campaign.localnet.stop()
        campaign.valkey.stop()
        campaign.postgres.stop()
        # The processes' logs outlive the run, outside the repository, for a failed run's reader.
        kept = Path(tempfile.gettempdir()) / f"chainworker-chaos-logs-{int(time.time())}"
        with contextlib.suppress(OSError):
            shutil.copytree(workdir / "logs", kept)
            print(f"process logs: {kept}", flush=True)
        shutil.rmtree(workdir, ignore_errors=True)
    ok = all(c.ok for c in checks)
    report = render(config, faults, checks, campaign, time.monotonic() - began)
    print(report, flush=True)
    if config.report is not None:
        config.report.parent.mkdir(parents=True, exist_ok=True)
        config.report.write_text(report)
    return ok, report


def render(config: Config, faults: list[Fault], checks: list[Check], campaign: Campaign,
           seconds: float) -> str:
    lines = [
        "# chainworker reliability campaign",
        "",
        f"Run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {seconds / 60:.1f} minutes: "
        f"{config.tickets} tickets in {config.tenants} tenants, {config.workers} worker "
        f"processes and the API, a localnet of 3 endpoints over one ledger "
        f"({config.slot_ms} ms slots), seed {config.seed}.",
        "",
        f"Machine: {platform.platform()}, {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}; PostgreSQL and Valkey embedded, scratch, on the same "
        "machine.",
        "",
        "## Invariants",
        "",
        "| invariant | holds | figure |",
        "|---|---|---|",
        *(f"| {c.name} | {'yes' if c.ok else '**NO**'} | {c.figure} |" for c in checks),
        "",
        "## What the faults did",
        "",
        "| figure | value |",
        "|---|---|",
        *(f"| {name} | {value} |" for name, value in campaign.figures.items()),
        "",
        "## Faults (the seeded schedule)",
        "",
        "Recovery is the time from a fault's end until a mint asked right then is confirmed;",
        "other faults may still be running then (last column).",
        "",
        "| at | fault | for | what | recovered in | while |",
        "|---|---|---|---|---|---|",
    ]
    recovered: dict[tuple[str, float], list[float]] = defaultdict(list)
    for kind, at, took_seconds in campaign.probes:
        recovered[(kind, at)].append(took_seconds)
    for fault in faults:
        took = recovered.get((fault.kind, fault.at))
        end = fault.at + fault.seconds
        during = sorted({
            other.kind for other in faults
            if other is not fault and other.seconds and other.at <= end <= other.at + other.seconds
        })
        lines.append(
            f"| {fault.at:.0f} s | {fault.kind} | {fault.seconds:.0f} s | {fault.detail} | "
            f"{f'{took[0]:.1f} s' if took else '—'} | {', '.join(during) or '—'} |"
        )
    restarts = ", ".join(f"{n} x {k}" for k, n in campaign.fleet.restarts.items()) or "none"
    lines += [
        "",
        f"Workers killed: {campaign.fleet.kills}; processes that exited by themselves and were "
        f"started again: {restarts}.",
    ]
    if campaign.errors:
        lines += ["", "## Errors", "", *(f"- {e}" for e in campaign.errors[:50])]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tickets", type=int, default=5000)
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--kills", type=int, default=12)
    parser.add_argument("--slot-ms", type=int, default=100)
    parser.add_argument("--scale", type=float, default=1.0,
                        help="fault windows at this fraction of their full length")
    parser.add_argument("--report", type=Path, default=REPO / "bench" / "results" / "chaos.md")
    args = parser.parse_args()
    config = Config(tickets=args.tickets, workers=args.workers, seed=args.seed,
                    kills=args.kills, slot_ms=args.slot_ms, scale=args.scale, report=args.report)
    ok, _ = asyncio.run(campaign_run(config))
    raise SystemExit(0 if ok else 1)


if __name__ == "__main__":
    main()
