"""CPU per mint, by process: PostgreSQL, the worker, the localnet, Redis.

Run: python bench/db_cost.py [--tickets 6000] [--runs 3] [--slot-ms 400]
                             [--without-migration 112 [--without-migration 113 ...]]
                             [--alternate]

Runs the mint flow of bench/worker_throughput.py (a new database, a tenant with
`--tickets` sold tickets, every mint requested at once, one worker in this process, until
no request is live) against one localnet, and reads the CPU time (user + system, from
/proc/<pid>/stat) each process used from the first request to the last mint:

- PostgreSQL: the backends serving the run's database (the worker's pool, the requests'
  recording, autovacuum of that database), found by their process title;
- PostgreSQL background: the server's own processes that serve no one database (WAL
  writer, checkpointer, background writer...): shared with anything else on the server;
- the worker: this process (the worker, and recording the requests);
- the localnet: its process;
- Redis: the server's process (shared with anything else that uses it).

`--without-migration N` builds the run's database without migration N (the schema before
it); `--alternate` runs each round twice, without and then with those migrations, so the
two schemas meet the same machine. It prints the figures of each run, then the median per
schema. No figure is checked: it measures.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from chainworker.db.migrate import migrations_dir
from chainworker.localnet.process import start_localnet

sys.path.insert(0, str(Path(__file__).parent))
from worker_throughput import run_worker_bench

TICKS = os.sysconf("SC_CLK_TCK")
SAMPLE_SECONDS = 0.2
GROUPS = ("postgres", "postgres background", "worker", "localnet", "redis")


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU of a process (all its threads), None when it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime (fields 14, 15)


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def _title(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().split()
    except OSError:
        return []


@dataclass
class CpuProbe:
    """Samples the CPU of the processes of one run; a worker_throughput Probe."""

    localnet_pid: int
    worker_pid: int = field(default_factory=os.getpid)
    database: str = ""
    _start: dict[int, float] = field(default_factory=dict)
    _last: dict[int, float] = field(default_factory=dict)
    _group: dict[int, str] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    seconds: float = 0.0
    _started_at: float = 0.0

    def _classify(self, pid: int) -> str | None:
        if pid == self.worker_pid:
            return "worker"
        if pid == self.localnet_pid:
            return "localnet"
        comm = _comm(pid)
        if comm == "redis-server":
            return "redis"
        if comm != "postgres":
            return None
        title = _title(pid)
        if self.database in title:
            return "postgres"
        # A backend names its client (host(port) or [local]) and an autovacuum worker its
        # database: those are another database's. The server's own processes (the
        # postmaster, WAL writer, checkpointer, ...) name neither.
        if "autovacuum worker" in " ".join(title) or any(
            "(" in word or word == "[local]" for word in title
        ):
            return None
        return "postgres background"

    def _sample(self, first: bool = False) -> None:
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            pid = int(entry.name)
            group = self._group.get(pid)
            if group is None:
                group = self._classify(pid)
                if group is None:
                    continue
                self._group[pid] = group
            used = cpu_seconds(pid)
            if used is None:
                continue
            if first:
                self._start[pid] = used
            else:
                # A process that appeared after the start used all its CPU inside the run.
                self._start.setdefault(pid, 0.0)
            self._last[pid] = used

    def _loop(self) -> None:
        while not self._stop.wait(SAMPLE_SECONDS):
            self._sample()

    def start(self, database: str) -> None:
        self.database = database
        self._sample(first=True)
        self._started_at = time.monotonic()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._sample()
        self.seconds = time.monotonic() - self._started_at
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def by_group(self) -> dict[str, float]:
        """CPU seconds each group used between start and stop."""
        used = dict.fromkeys(GROUPS, 0.0)
        for pid, last in self._last.items():
            used[self._group[pid]] += last - self._start.get(pid, last)
        return used


def schema_without(skip: set[str]) -> Path:
    """A copy of the migrations without those numbered in `skip`."""
    target = Path(tempfile.mkdtemp(prefix="cw-migrations-"))
    for path in migrations_dir().iterdir():
        if path.suffix == ".sql" and path.name.split("_", 1)[0] not in skip:
            shutil.copy(path, target / path.name)
    return target


@dataclass
class Run:
    schema: str
    mints: int
    seconds: float
    cpu: dict[str, float]

    def ms_per_mint(self, group: str) -> float:
        return 1000 * self.cpu[group] / self.mints

    def line(self) -> str:
        parts = ", ".join(f"{group} {self.ms_per_mint(group):.3f}" for group in GROUPS)
        total = 1000 * sum(self.cpu.values()) / self.mints
        return (f"{self.schema:>10}: {self.mints / self.seconds:,.0f} mints/s; ms CPU per mint: "
                f"{parts}; total {total:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tickets", type=int, default=6000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--slot-ms", type=int, default=400)
    parser.add_argument("--without-migration", action="append", default=[], metavar="N",
                        help="build the database without migration N (repeatable)")
    parser.add_argument("--alternate", action="store_true",
                        help="each round: without the migrations, then with them")
    args = parser.parse_args()
    skip = {f"{int(n):03d}" for n in args.without_migration}
    if args.alternate and not skip:
        parser.error("--alternate needs --without-migration")
    label = "without " + ",".join(sorted(skip)) if skip else "all"
    plans: list[tuple[str, Path | None]] = []
    if args.alternate:
        plans = [(label, schema_without(skip)), ("all", None)]
    else:
        plans = [(label, schema_without(skip) if skip else None)]
    runs: list[Run] = []
    with start_localnet(slot_ms=args.slot_ms) as node:
        for round_ in range(args.runs):
            for schema, migrations in plans:
                probe = CpuProbe(localnet_pid=node.pid)
                result = asyncio.run(
                    run_worker_bench(node.rpc_url, args.tickets, probe=probe,
                                     migrations=migrations)
                )
                run = Run(schema, int(result["mints"]), result["seconds"], probe.by_group())
                runs.append(run)
                print(f"round {round_ + 1} {run.line()}", flush=True)
    for _, migrations in plans:
        if migrations is not None:
            shutil.rmtree(migrations, ignore_errors=True)
    print("median per schema:")
    for schema, _ in plans:
        mine = [run for run in runs if run.schema == schema]
        rate = statistics.median(run.mints / run.seconds for run in mine)
        figures = ", ".join(
            f"{group} {statistics.median(run.ms_per_mint(group) for run in mine):.3f}"
            for group in GROUPS
        )
        total = statistics.median(1000 * sum(run.cpu.values()) / run.mints for run in mine)
        print(f"{schema:>10}: {rate:,.0f} mints/s; ms CPU per mint: {figures}; "
              f"total {total:.3f}")


if __name__ == "__main__":
    main()
