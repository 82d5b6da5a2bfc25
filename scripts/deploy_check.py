"""The deploy check: build the image, run it in Docker against this machine's services.

From a fresh clone: builds a Debian bookworm base image with debootstrap (no registry is
needed), builds `deploy/Dockerfile` on it, then runs the containers `migrate`,
`localnet`, `worker` and `api` (host network) against this machine's PostgreSQL and
Redis, in a database and a queue of their own. It mints tickets over the API, checks
the database against the chain (through the API and `chainworker reconcile`), prints
each step with its time, and removes its containers and database, also on failure.
Exit 0 only when every check held. Standard library only: it runs before any venv.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BASE_PACKAGES = "python3,python3-venv,python-is-python3,ca-certificates"
# pip in the build must trust what this machine trusts (an intercepting proxy's CA too).
CA_BUNDLE = Path(os.environ.get("SSL_CERT_FILE", "/etc/ssl/certs/ca-certificates.crt"))
FINAL = ("confirmed", "failed", "expired", "refused", "abandoned")
STARTED = time.monotonic()


class CheckFailed(Exception):
    """A step did not do what it must; its message is the one line printed."""


def step(message: str) -> None:
    print(f"[{time.monotonic() - STARTED:7.1f}s] {message}", flush=True)


@contextmanager
def timed(what: str) -> Iterator[None]:
    begun = time.monotonic()
    step(f"{what} ...")
    yield
    step(f"{what}: done in {time.monotonic() - begun:.1f}s")


def run(
    args: Sequence[str],
    *,
    log: Path | None = None,
    stdin: Any = None,
    env: dict[str, str] | None = None,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    """Run a command; with `log`, its output goes there and its tail is shown on failure."""
    if log is not None:
        with log.open("a") as out:
            done = subprocess.run(list(args), stdout=out, stderr=subprocess.STDOUT, text=True,
                                  stdin=stdin, env=env, check=False)
    else:
        done = subprocess.run(list(args), capture_output=True, text=True, stdin=stdin,
                              env=env, check=False)
    if check and done.returncode != 0:
        tail = log.read_text()[-3000:] if log is not None else (done.stderr or done.stdout)[-3000:]
        raise CheckFailed(f"{' '.join(args[:4])} ... exited {done.returncode}:\n{tail}")
    return done


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for(what: str, ready: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if ready():
                return
        except (OSError, ValueError):
            pass
        time.sleep(0.5)
    raise CheckFailed(f"{what} not ready after {timeout:.0f}s")


def http(method: str, url: str, body: Any = None, headers: dict[str, str] | None = None,
         timeout: float = 10) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method, headers={
        "Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            return answer.status, json.loads(answer.read() or b"null")
    except urllib.error.HTTPError as error:
        text = error.read().decode(errors="replace")
        try:
            return error.code, json.loads(text)
        except ValueError:
            return error.code, text


class Docker:
    """The engine: used as it is, or started here (and stopped at the end) when absent."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.daemon: subprocess.Popen[bytes] | None = None

    def ensure(self) -> None:
        if shutil.which("docker") and run(["docker", "info"], check=False).returncode == 0:
            step("docker: using the running engine")
            return
        if not shutil.which("dockerd"):
            apt_install("docker.io")
        # The flags this kind of machine needs: no overlay filesystem, no iptables, no bridge;
        # containers then run with --network host.
        log = (self.work / "dockerd.log").open("w")
        self.daemon = subprocess.Popen(
            ["dockerd", "--storage-driver=vfs", "--iptables=false", "--bridge=none"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        wait_for("dockerd", lambda: run(["docker", "info"], check=False).returncode == 0, 60)
        step("docker: started dockerd --storage-driver=vfs --iptables=false --bridge=none")

    def stop(self) -> None:
        if self.daemon is None:
            return
        self.daemon.send_signal(signal.SIGTERM)
        try:
            self.daemon.wait(30)
        except subprocess.TimeoutExpired:
            self.daemon.kill()
        step("docker: stopped the dockerd this check started")


def apt_install(*packages: str) -> None:
    if os.geteuid() != 0:
        raise CheckFailed(f"{', '.join(packages)} missing and not root: apt-get install it")
    with timed(f"apt-get install {' '.join(packages)}"):
        run(["apt-get", "update", "-qq"])
        run(["apt-get", "install", "-y", "-qq", *packages],
            env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})


def build_base(image: str, mirror: str, work: Path) -> None:
    """debootstrap bookworm with Python, this machine's CA bundle, then `docker import`."""
    if not shutil.which("debootstrap"):
        apt_install("debootstrap")
    rootfs = work / "rootfs"
    log = work / "debootstrap.log"
    with timed(f"base image {image}: debootstrap bookworm (+{BASE_PACKAGES})"):
        run(["debootstrap", "--variant=minbase", f"--include={BASE_PACKAGES}", "bookworm",
             str(rootfs), mirror], log=log)
        if CA_BUNDLE.is_file():
            shutil.copy(CA_BUNDLE, rootfs / "etc/ssl/certs/ca-certificates.crt")
        tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
        run(["docker", "import", "-", image], stdin=tar.stdout)
        tar.wait()
        shutil.rmtree(rootfs)


class Stack:
    """The containers of one check, their shared environment, and their clean-up."""

    def __init__(self, image: str, work: Path, env: dict[str, str]) -> None:
        self.image = image
        self.work = work
        self.tag = uuid.uuid4().hex[:8]
        self.env_file = work / "chainworker.env"
        # An env file, not -e: the secrets stay out of the process list.
        self.env_file.write_text("".join(f"{key}={value}\n" for key, value in env.items()))
        self.env_file.chmod(0o600)
        self.containers: list[str] = []

    def _base(self) -> list[str]:
        return ["docker", "run", "--network", "host", "--env-file", str(self.env_file)]

    def once(self, *command: str, entrypoint: str | None = None) -> str:
        """Run the image once (`--rm`) and return its standard output."""
        args = [*self._base(), "--rm"]
        if entrypoint:
            args += ["--entrypoint", entrypoint]
        return run([*args, self.image, *command]).stdout

    def start(self, role: str, *command: str) -> str:
        name = f"chainworker-check-{self.tag}-{role}"
        run([*self._base(), "-d", "--name", name, self.image, *command])
        self.containers.append(name)
        return name

    def logs_tail(self, lines: int = 25) -> None:
        for name in self.containers:
            done = run(["docker", "logs", "--tail", str(lines), name], check=False)
            print(f"--- {name} (last {lines} lines)\n{done.stdout}{done.stderr}", flush=True)

    def remove(self) -> None:
        for name in reversed(self.containers):
            run(["docker", "rm", "-f", name], check=False)
        if self.containers:
            step(f"removed containers: {', '.join(self.containers)}")
        self.containers.clear()


# Run inside the image (asyncpg is there): create or drop the check's database.
DATABASE_SQL = """
import asyncio, os, sys, asyncpg
async def main(action, name):
    conn = await asyncpg.connect(os.environ["CHECK_POSTGRES_URL"])
    try:
        if action == "create":
            await conn.execute(f'CREATE DATABASE "{name}"')
        else:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()
asyncio.run(main(sys.argv[1], sys.argv[2]))
"""


def with_database(url: str, name: str) -> str:
    head, _, _ = url.rpartition("/")
    return f"{head}/{name}"


def with_user(url: str, user: str) -> str:
    scheme, _, rest = url.partition("://")
    host = rest.rpartition("@")[2]
    return f"{scheme}://{user}@{host}"


def check(args: argparse.Namespace, work: Path) -> dict[str, float]:
    figures: dict[str, float] = {}
    docker = Docker(work)
    docker.ensure()
    stack: Stack | None = None
    database = f"chainworker_check_{uuid.uuid4().hex[:8]}"
    created_database = False
    try:
        if args.rebuild_base or run(["docker", "image", "inspect", args.base_image],
                                    check=False).returncode != 0:
            begun = time.monotonic()
            build_base(args.base_image, args.debian_mirror, work)
            figures["base image s"] = time.monotonic() - begun
        else:
            step(f"base image {args.base_image}: present (--rebuild-base builds it again)")
        begun = time.monotonic()
        with timed(f"image {args.image}: docker build -f deploy/Dockerfile"):
            run(["docker", "build", "--network", "host", "-f", "deploy/Dockerfile",
                 "--build-arg", f"PYTHON_IMAGE={args.base_image}", "-t", args.image, str(ROOT)],
                log=work / "build.log")
        figures["image build s"] = time.monotonic() - begun

        rpc_port, api_port, metrics_port = free_port(), free_port(), free_port()
        admin_url = with_database(args.postgres_url, database)
        app_url = with_database(with_user(args.postgres_url, "chainworker_app"), database)
        rpc = f"http://127.0.0.1:{rpc_port}"
        api = f"http://127.0.0.1:{api_port}"
        authority = run(["docker", "run", "--rm", "--entrypoint", "python", args.image, "-c",
                         "from solders.keypair import Keypair; print(Keypair())"]).stdout.strip()
        stack = Stack(args.image, work, {
            "DATABASE_URL": app_url,
            "DATABASE_ADMIN_URL": admin_url,
            "REDIS_URL": args.redis_url,
            "QUEUE_NAME": f"chainworker-check:{database}",
            "SOLANA_RPC_URLS": rpc,
            "SOLANA_CLUSTER": "localnet",
            "AUTHORITY_KEYPAIR": authority,
            "MINT_SEED": secrets.token_urlsafe(48),
            "CUSTODIAL_SEED": secrets.token_urlsafe(48),
            "LOG_FORMAT": "json",
            "CHECK_POSTGRES_URL": args.postgres_url,
        })
        step(f"database {database} on {args.postgres_url.rpartition('@')[2]}; "
             f"redis {args.redis_url.rpartition('@')[2]}; ports rpc {rpc_port}, "
             f"api {api_port}, metrics {metrics_port}")
        begun = time.monotonic()
        with timed("start migrate, localnet, worker, api"):
            stack.once("-c", DATABASE_SQL, "create", database, entrypoint="python")
            created_database = True
            stack.once("migrate")
            stack.start("localnet", "localnet", "--host", "127.0.0.1", "--port", str(rpc_port),
                        "--slot-ms", "100")
            wait_for("localnet", lambda: http("POST", rpc, {
                "jsonrpc": "2.0", "id": 1, "method": "getHealth"})[0] == 200, 60)
            stack.start("worker", "worker", "--metrics-port", str(metrics_port))
            stack.start("api", "api", "--host", "127.0.0.1", "--port", str(api_port))
            wait_for("worker metrics", lambda: urllib.request.urlopen(
                f"http://127.0.0.1:{metrics_port}/metrics", timeout=2).status == 200, 90)
            wait_for("api /readyz", lambda: http("GET", f"{api}/readyz")[0] == 200, 90)
        figures["stack start s"] = time.monotonic() - begun

        seeded = json.loads(stack.once("seed", "--tickets", str(args.tickets), "--json"))
        tenant, event = seeded["tenant_id"], seeded["event_id"]
        tickets: list[str] = seeded["ticket_ids"]
        group = json.loads(stack.once("event", "create-group", "--tenant", tenant,
                                      "--event", event, "--json"))["group_mint"]
        token = json.loads(stack.once("token", "create", "--tenant", tenant,
                                      "--name", "deploy-check", "--json"))["token"]
        step(f"seeded tenant {tenant}: {len(tickets)} tickets; event collection {group}")
        auth = {"Authorization": f"Bearer {token}"}
        figures["mint s"] = mint_over_api(api, auth, tickets)
        figures["mints per s"] = len(tickets) / figures["mint s"]
        figures["verify s"] = check_chain(api, auth, tickets, group)
        with timed("chainworker reconcile holders and reconcile, in the image"):
            holders = json.loads(stack.once("reconcile", "holders", "--tenant", tenant, "--json"))
            if holders["summary"]["checked"] != len(tickets) or holders["summary"]["drifts"]:
                raise CheckFailed(f"reconcile holders: {holders['summary']}")
            stuck = json.loads(stack.once("reconcile", "--older-than", "0s", "--tenant", tenant,
                                          "--json"))
            step(f"reconcile holders: {holders['summary']['checked']} checked, 0 drifts; "
                 f"reconcile: {json.dumps(stuck.get('summary', stuck))}")
        return figures
    except BaseException:
        if stack is not None:
            stack.logs_tail()
        raise
    finally:
        if stack is not None and not args.keep:
            stack.remove()
            if created_database:
                stack.once("-c", DATABASE_SQL, "drop", database, entrypoint="python")
                step(f"dropped database {database}")
        docker.stop()


def mint_over_api(api: str, auth: dict[str, str], tickets: list[str]) -> float:
    begun = time.monotonic()
    with timed(f"mint {len(tickets)} tickets: POST /v1/tickets/{{id}}/mint"):
        def ask(ticket: str) -> str:
            status, body = http("POST", f"{api}/v1/tickets/{ticket}/mint", None,
                                {**auth, "Idempotency-Key": str(uuid.uuid4())})
            if status != 202:
                raise CheckFailed(f"mint {ticket}: HTTP {status} {body}")
            return str(body["request_id"])

        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            asked = list(pool.map(ask, tickets))
        deadline = time.monotonic() + 180
        outcomes: dict[str, str] = {}
        while len(outcomes) < len(asked):
            if time.monotonic() > deadline:
                raise CheckFailed(f"only {len(outcomes)} of {len(asked)} mints settled in 180s")
            for request in asked:
                if request not in outcomes:
                    status, body = http("GET", f"{api}/v1/requests/{request}", None, auth)
                    if status == 200 and body["status"] in FINAL:
                        outcomes[request] = body["status"]
            time.sleep(0.5)
        unconfirmed = {r: s for r, s in outcomes.items() if s != "confirmed"}
        if unconfirmed:
            raise CheckFailed(f"mints not confirmed: {unconfirmed}")
    return time.monotonic() - begun


def check_chain(api: str, auth: dict[str, str], tickets: list[str], group: str) -> float:
    """Each ticket, read back from the chain through the API: minted, held, a member."""
    begun = time.monotonic()
    with timed("database against chain: GET /v1/tickets/{id}/chain"):
        deadline = time.monotonic() + 120
        pending = set(tickets)
        problems: dict[str, str] = {}
        while pending and time.monotonic() < deadline:
            for ticket in sorted(pending):
                status, body = http("GET", f"{api}/v1/tickets/{ticket}/chain", None, auth)
                problem = chain_problem(status, body, group)
                if problem is None:
                    pending.discard(ticket)
                    problems.pop(ticket, None)
                else:
                    problems[ticket] = problem
            time.sleep(0.5 if pending else 0)
        if pending:
            shown = "; ".join(f"{t}: {problems[t]}" for t in sorted(pending)[:5])
            raise CheckFailed(f"{len(pending)} ticket(s) disagree with the chain: {shown}")
    return time.monotonic() - begun


def chain_problem(status: int, body: Any, group: str) -> str | None:
    if status != 200:
        return f"HTTP {status}"
    holder, membership = body.get("holder") or {}, body.get("membership") or {}
    if body.get("status") != "minted" or not body.get("token_mint"):
        return f"status {body.get('status')}, mint {body.get('token_mint')}"
    if holder.get("amount") != 1 or not holder.get("owner"):
        return f"holder {holder}"
    if body.get("mint_closed"):
        return "mint closed"
    if membership.get("member_group") != group or not membership.get("verified"):
        return f"membership {membership}"
    return None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/deploy-check", description=__doc__.split(
        "\n\n")[0])
    parser.add_argument("--postgres-url", default=os.environ.get(
        "CHECK_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"),
        help="A role that may create databases and roles (default: %(default)s)")
    parser.add_argument("--redis-url", default=os.environ.get(
        "CHECK_REDIS_URL", "redis://127.0.0.1:6379/0"), help="default: %(default)s")
    parser.add_argument("--tickets", type=int, default=20, help="default: %(default)s")
    parser.add_argument("--base-image", default="chainworker-base:bookworm")
    parser.add_argument("--image", default="chainworker:local")
    parser.add_argument("--rebuild-base", action="store_true",
                        help="debootstrap the base image even when it is present")
    parser.add_argument("--debian-mirror", default="http://deb.debian.org/debian")
    parser.add_argument("--keep", action="store_true",
                        help="leave the containers and the database for inspection")
    args = parser.parse_args(argv)
    if not 1 <= args.tickets <= 1000:
        parser.error("--tickets must be between 1 and 1000")
    with tempfile.TemporaryDirectory(prefix="chainworker-check-") as directory:
        try:
            figures = check(args, Path(directory))
        except CheckFailed as failure:
            step(f"FAILED: {failure}")
            return 1
        except KeyboardInterrupt:
            step("interrupted")
            return 130
    step("PASSED: " + ", ".join(f"{name} {value:.1f}" for name, value in figures.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
