"""Arbitrary text in every CLI argument that names a thing, a time or a reason.

Each command is run in this process (`chainworker.cli.run`, what `main` runs) with
generated arguments: SQL, NUL, lone surrogates (what Python makes of bytes that are not
UTF-8), newlines, very long and unicode text, mixed with ids that exist (of the tenant,
of another tenant). Whatever the input: exit 0 or 1 with a result, or exit 2 with one
line on stderr; never a traceback; a refused input changes no row, and an accepted one
only the tables its command writes, and never another tenant's rows. A few of the worst
are then run as real processes, where the bytes come from a real argv.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import unicodedata
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

import asyncpg
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from chainworker import cli
from chainworker.config import get_settings
from chainworker.db import requests, seed
from chainworker.db.pool import tenant_transaction
from chainworker.db.requests import NewRequest
from chainworker.lifecycle.model import RequestStatus, TxOp
from chainworker.localnet.process import LocalnetProcess
from tests.conftest import TestDatabase, own_queue_name
from tests.snapshot import changed, table_digests

pytestmark = pytest.mark.timeout(120)

T = TypeVar("T")
EXAMPLES = 25
NASTY = [
    "'; DROP TABLE tickets; --",
    "' OR 1=1 --",
    "1; DELETE FROM chain_requests",
    "$1",
    "%s%n",
    "\x00",
    "a\x00b",
    "\udcff\udcfe",
    "\ud800",
    "line\nbreak",
    "\r\n",
    "\x1b[31mred",
    "\u202eevil",
    "😀" * 50,
    "é" * 2000,
    "x" * 100_000,
    "9" * 400,
    "1e400",
    "-1",
    "0",
    "",
    " ",
    "--json",
    "-",
    "null",
]
# Lone surrogates and control characters included, which st.text() leaves out by default.
ANY_TEXT = st.one_of(
    st.sampled_from(NASTY),
    st.text(st.characters(exclude_categories=()), max_size=40),
    st.text(max_size=300),
)
SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)


@dataclass(frozen=True)
class World:
    db: TestDatabase
    target: seed.Seeded
    bystander: seed.Seeded
    transfer_id: uuid.UUID
    queued_request: uuid.UUID
    failed_request: uuid.UUID

    @property
    def known_ids(self) -> list[str]:
        """Ids that exist: the tenant's, another tenant's, and ids of the wrong kind."""
        return [
            str(self.target.tenant_id), str(self.bystander.tenant_id),
            *map(str, self.target.ticket_ids), str(self.bystander.ticket_ids[0]),
            str(self.target.user_ids[0]), str(self.bystander.user_ids[0]),
            str(self.transfer_id), str(self.queued_request), str(self.failed_request),
            str(self.target.event_id),
        ]


@dataclass(frozen=True)
class Outcome:
    code: int
    stdout: str
    stderr: str
    changed: set[str]
    bystander_changed: set[str]


@pytest.fixture(scope="module")
async def world(module_db: TestDatabase) -> AsyncIterator[World]:
    owner = await asyncpg.connect(module_db.admin_dsn)
    pool = await asyncpg.create_pool(module_db.app_dsn, min_size=1, max_size=2)
    try:
        target = await seed.seed_tenant(owner, tickets=4, users=2, tenant_name="target")
        bystander = await seed.seed_tenant(owner, tickets=2, users=2, tenant_name="bystander")
        [transfer_id] = await seed.accepted_transfers(
            owner, target.tenant_id, target.ticket_ids[3:], target.user_ids[0]
        )
        async with tenant_transaction(pool, target.tenant_id) as conn:
            queued, failed = await requests.record_requests(
                conn, target.tenant_id, TxOp.MINT,
                [NewRequest(t, TxOp.MINT) for t in target.ticket_ids[:2]], "cli",
            )
            await requests.settle(
                conn, failed.request_id, RequestStatus.FAILED, code="x", message="x"
            )
        yield World(module_db, target, bystander, transfer_id, queued.request_id,
                    failed.request_id)
    finally:
        await pool.close()
        await owner.close()


@pytest.fixture(scope="module")
def cli_env(
    world: World,
    redis_url: str,
    localnet: LocalnetProcess,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[dict[str, str]]:
    env = {
        "DATABASE_URL": world.db.app_dsn,
        "DATABASE_ADMIN_URL": world.db.admin_dsn,
        "REDIS_URL": redis_url,
        "SOLANA_RPC_URLS": localnet.rpc_url,
        "STATE_DIR": str(tmp_path_factory.mktemp("cli")),
        "QUEUE_NAME": own_queue_name("cli-fuzz"),
        "METRICS_PORT": "0",
        "DB_POOL_MIN_SIZE": "1",
        "LOG_FORMAT": "json",
        "COLUMNS": "200",
    }
    if not any(group.name == "enqueue" for group in cli.app.registered_groups):
        cli._register()
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        get_settings.cache_clear()
        yield env
    get_settings.cache_clear()


class Harness:
    """Runs commands in a thread of its own (they call asyncio.run), away from the tests'
    loop; reads the digests there too, through one owner connection on a loop of its own."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cli-under-test")
        self.loop = asyncio.new_event_loop()
        self.conn: asyncpg.Connection = self._in_thread(
            lambda: self.loop.run_until_complete(asyncpg.connect(world.db.admin_dsn))
        )

    def _in_thread(self, work: Callable[[], T]) -> T:
        return self.thread.submit(work).result()

    def _digests(self) -> tuple[dict[str, str], dict[str, str]]:
        async def read() -> tuple[dict[str, str], dict[str, str]]:
            return (await table_digests(self.conn),
                    await table_digests(self.conn, self.world.bystander.tenant_id))

        return self.loop.run_until_complete(read())

    def digests(self) -> tuple[dict[str, str], dict[str, str]]:
        return self._in_thread(self._digests)

    def invoke(self, args: list[str], stdin: str | None = None) -> Outcome:
        # Lone surrogates become bytes that are not UTF-8, as stdin may hold.
        data = stdin.encode("utf-8", "surrogatepass") if stdin is not None else None

        def work() -> Outcome:
            before, bystander_before = self._digests()
            with CliRunner().isolation(input=data) as (out, err, _):
                code = cli.run(args)
                stdout, stderr = out.getvalue(), err.getvalue()
            after, bystander_after = self._digests()
            return Outcome(
                code,
                stdout.decode(errors="replace"),
                stderr.decode(errors="replace"),
                changed(before, after),
                changed(bystander_before, bystander_after),
            )

        return self._in_thread(work)

    def fetchval(self, sql: str, *args: object) -> object:
        return self._in_thread(lambda: self.loop.run_until_complete(self.conn.fetchval(sql, *args)))

    def close(self) -> None:
        self._in_thread(lambda: self.loop.run_until_complete(self.conn.close()))
        self._in_thread(self.loop.close)
        self.thread.shutdown()


@pytest.fixture(scope="module")
def harness(world: World, cli_env: dict[str, str]) -> Iterator[Harness]:
    running = Harness(world)
    yield running
    running.close()


def check(outcome: Outcome, args: list[str], may_write: set[str]) -> None:
    """Exit 0/1 writing only `may_write`, or exit 2 in one line writing nothing; no traceback."""
    shown = [a[:80] for a in args]
    output = outcome.stdout + outcome.stderr
    assert "Traceback" not in output and "command failed" not in output, (shown, output[-2000:])
    assert outcome.code in (0, 1, 2), (shown, outcome.code, output[-2000:])
    assert not outcome.bystander_changed, (shown, outcome.bystander_changed)
    if outcome.code == 2:
        lines = outcome.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith("chainworker: "), (shown, outcome.stderr)
        assert len(lines[0]) < 500, (shown, lines[0][:600])
        assert not outcome.changed, (shown, outcome.stderr, outcome.changed)
    else:
        assert outcome.changed <= may_write, (shown, outcome.changed - may_write)


def ids_or_text(world: World) -> st.SearchStrategy[str]:
    return st.one_of(st.sampled_from(world.known_ids), ANY_TEXT, st.uuids().map(str))


def mostly(world: World, *right: object) -> st.SearchStrategy[str]:
    """The right value half the time (so valid commands run too), anything else otherwise."""
    return st.one_of(st.sampled_from([str(value) for value in right]), ids_or_text(world))


def few_digits(text: str) -> bool:
    """A count that, however Typer reads it, stays small (seeding a million tickets is valid)."""
    return sum(unicodedata.category(c) == "Nd" for c in text) <= 1


REQUESTS = {"chain_requests"}
SEEDED = {"tenants", "users", "events", "tickets", "ticket_state_history", "ticket_audit_log"}
ABANDONED = {
    "chain_requests", "pending_transactions", "blockchain_sync_log", "ticket_state_history",
    "outbox",
}
Build = Callable[[st.DataObject, World], tuple[list[str], str | None, set[str]]]


def _enqueue_mint(data: st.DataObject, w: World) -> tuple[list[str], str | None, set[str]]:
    ids = data.draw(st.lists(mostly(w, *w.target.ticket_ids), min_size=1, max_size=3))
    args = ["enqueue", "mint", "--tenant", data.draw(mostly(w, w.target.tenant_id))]
    for ticket in ids:
        args += ["--ticket", ticket]
    return args, None, REQUESTS


def _enqueue_stdin(data: st.DataObject, w: World) -> tuple[list[str], str | None, set[str]]:
    lines = data.draw(st.lists(mostly(w, *w.target.ticket_ids), min_size=1, max_size=4))
    args = ["enqueue", "mint", "--tenant", str(w.target.tenant_id), "--ticket", "-"]
    return args, "\n".join(lines), REQUESTS


def _enqueue_burn(data: st.DataObject, w: World) -> tuple[list[str], str | None, set[str]]:
    reason = data.draw(st.one_of(st.sampled_from(["revoke", "refund"]), ANY_TEXT))
    args = ["enqueue", "burn", "--tenant", data.draw(mostly(w, w.target.tenant_id)),
            "--ticket", data.draw(mostly(w, *w.target.ticket_ids)), "--reason", reason]
    return args, None, REQUESTS


def _enqueue_transfer(data: st.DataObject, w: World) -> tuple[list[str], str | None, set[str]]:
    args = ["enqueue", "transfer", "--tenant", data.draw(mostly(w, w.target.tenant_id)),
            "--transfer", data.draw(mostly(w, w.transfer_id))]
    return args, None, REQUESTS


def _change(data: st.DataObject) -> list[str]:
    """--field and --remove options: good ones half the time, anything otherwise."""
    field = st.one_of(st.sampled_from(["seat=A-7", "uri=https://x.example/1", "ticket_id=x",
                                       "symbol=S", "seat", "=v", "section=" + "s" * 600]),
                      ANY_TEXT)
    key = st.one_of(st.sampled_from(["seat", "uri", "event_id"]), ANY_TEXT)
    args: list[str] = []
    for text in data.draw(st.lists(field, max_size=3)):
        args += ["--field", text]
    for text in data.draw(st.lists(key, max_size=2)):
        args += ["--remove", text]
    return args


def _enqueue_metadata(data: st.DataObject, w: World) -> tuple[list[str], str | None, set[str]]:
    args = ["enqueue", "metadata", "--tenant", data.draw(mostly(w, w.target.tenant_id)),
            "--ticket", data.draw(mostly(w, *w.target.ticket_ids)), *_change(data)]
    return args, None, REQUESTS


def _event_metadata(data: st.DataObject, w: World) -> tuple[list[str], str | None, set[str]]:
    args = ["event", "update-metadata", "--json",
            "--tenant", data.draw(mostly(w, w.target.tenant_id)),
            "--event", data.draw(mostly(w, w.target.event_id, w.bystander.event_id)),
            *_change(data)]
    if data.draw(st.booleans()):
        args += ["--batch-size", data.draw(st.one_of(st.sampled_from(["1", "0", "5001"]),
                                                     ANY_TEXT))]
    if data.draw(st.booleans()):
        args.append("--dry-run")
    return args, None, REQUESTS


def _enqueue_verify(data: st.DataObject, w: World) -> tuple[list[str], str | None, set[str]]:
    args = ["enqueue", "verify", "--tenant", data.draw(mostly(w, w.target.tenant_id)),
            "--ticket", data.draw(mostly(w, *w.target.ticket_ids))]
    return args, None, REQUESTS


def _event_verify(data: st.DataObject, w: World) -> tuple[list[str], str | None, set[str]]:
    args = ["event", "verify", "--json", "--tenant", data.draw(mostly(w, w.target.tenant_id)),
            "--event", data.draw(mostly(w, w.target.event_id))]
    if data.draw(st.booleans()):
        args += ["--batch", data.draw(st.one_of(st.sampled_from(["1", "0", "10001"]), ANY_TEXT))]
    return args, None, REQUESTS


def _create_group(data: st.DataObject, w: World) -> tuple[list[str], str | None, set[str]]:
    args = ["event", "create-group", "--json", "--wait", "0",
            "--tenant", data.draw(mostly(w, w.target.tenant_id)),
            "--event", data.draw(mostly(w, w.target.event_id))]
    return args, None, {"chainworker_event_groups"}


def _reconcile(data: st.DataObject, w: World) -> tuple[list[str], str | None, set[str]]:
    args = ["reconcile", "--json"]
    options = {
        "--older-than": st.one_of(st.sampled_from(["0s", "90s", "1h30m", "3650d", "3651d"]),
                                  ANY_TEXT),
        "--tenant": mostly(w, w.target.tenant_id),
        "--op": st.one_of(st.sampled_from(["mint", "transfer", "burn"]), ANY_TEXT),
        "--limit": st.one_of(st.integers(-2, 10**30).map(str), ANY_TEXT),
    }
    for name in data.draw(st.lists(st.sampled_from(sorted(options)), min_size=1, unique=True)):
        args += [name, data.draw(options[name])]
    return args, None, set()  # a dry run


def _holders(data: st.DataObject, w: World) -> tuple[list[str], str | None, set[str]]:
    tenant = data.draw(mostly(w, w.target.tenant_id))
    return ["reconcile", "holders", "--json", "--tenant", tenant], None, set()  # a dry run


def _tx(data: st.DataObject, w: World) -> tuple[list[str], str | None, set[str]]:
    verb = data.draw(st.sampled_from(["show", "retry", "abandon"]))
    request = data.draw(mostly(w, w.queued_request, w.failed_request))
    args = ["tx", verb, "--json", "--", request]
    if verb == "abandon":
        args[3:3] = ["--reason", data.draw(st.one_of(st.just("venue cancelled"), ANY_TEXT))]
    return args, None, {"show": set(), "retry": REQUESTS | {"blockchain_sync_log"},
                        "abandon": ABANDONED}[verb]


def _token(data: st.DataObject, w: World) -> tuple[list[str], str | None, set[str]]:
    args = ["token", "create", "--json", "--tenant", data.draw(mostly(w, w.target.tenant_id)),
            "--name", data.draw(st.one_of(st.just("ticket-service"), ANY_TEXT))]
    if data.draw(st.booleans()):
        args += ["--ttl", data.draw(st.one_of(st.sampled_from(["30d", "2w", "521w"]), ANY_TEXT))]
    if data.draw(st.booleans()):
        args += ["--admin", "--user", data.draw(mostly(w, *w.target.user_ids))]
    return args, None, {"api_tokens"}


def _revoke(data: st.DataObject, w: World) -> tuple[list[str], str | None, set[str]]:
    return ["token", "revoke", "--", data.draw(ids_or_text(w))], None, {"api_tokens"}


def _seed(data: st.DataObject, w: World) -> tuple[list[str], str | None, set[str]]:
    count = st.one_of(st.sampled_from(["1", "2", "0", "-1", "1000001"]), ANY_TEXT)
    tickets, users = data.draw(count), data.draw(count)
    assume(few_digits(tickets) and few_digits(users))
    args = ["seed", "--json", "--tickets", tickets, "--users", users,
            "--tenant-name", data.draw(st.one_of(st.just("Fuzz Tenant"), ANY_TEXT))]
    return args, None, SEEDED


COMMANDS: dict[str, Build] = {
    "enqueue mint": _enqueue_mint,
    "enqueue mint from stdin": _enqueue_stdin,
    "enqueue burn": _enqueue_burn,
    "enqueue transfer": _enqueue_transfer,
    "enqueue metadata": _enqueue_metadata,
    "event update-metadata": _event_metadata,
    "enqueue verify": _enqueue_verify,
    "event create-group": _create_group,
    "event verify": _event_verify,
    "reconcile": _reconcile,
    "reconcile holders": _holders,
    "tx": _tx,
    "token create": _token,
    "token revoke": _revoke,
    "seed": _seed,
}


# First: it uses the world's requests before the generated commands settle them.
def test_valid_unusual_values_give_their_result(world: World, harness: Harness) -> None:
    tenant = str(world.target.tenant_id)
    cases = [
        (["token", "create", "--tenant", tenant, "--name", "Kasse Süd — 🎫", "--ttl", "2w",
          "--admin", "--user", str(world.target.user_ids[1])], {"api_tokens"}),
        (["seed", "--tickets", "1", "--users", "1", "--tenant-name", "Théâtre « Ω » 🎭"],
         SEEDED),
        (["enqueue", "burn", "--tenant", tenant, "--ticket", str(world.target.ticket_ids[2]),
          "--reason", "refund"], REQUESTS),
        (["enqueue", "transfer", "--tenant", tenant, "--transfer", str(world.transfer_id)],
         REQUESTS),
        (["tx", "retry", str(world.failed_request)], REQUESTS | {"blockchain_sync_log"}),
        (["tx", "abandon", str(world.queued_request), "--reason", "salle fermée — ‮"],
         ABANDONED),
        (["reconcile", "--older-than", "1h30m", "--tenant", tenant, "--op", "burn",
          "--limit", str(10**30)], set()),
    ]
    for args, may_write in cases:
        outcome = harness.invoke(args)
        check(outcome, args, may_write)
        assert outcome.code == 0, (args, outcome.stderr)
        assert outcome.changed or not may_write, args


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_arbitrary_arguments_give_a_result_or_one_line_and_change_nothing(
    command: str, world: World, harness: Harness
) -> None:
    build = COMMANDS[command]

    @SETTINGS
    @given(data=st.data())
    def calls(data: st.DataObject) -> None:
        args, stdin, may_write = build(data, world)
        outcome = harness.invoke(args, stdin)
        check(outcome, args, may_write)

    calls()


def test_each_kind_of_bad_value_is_named(world: World, harness: Harness) -> None:
    tenant, ticket = str(world.target.tenant_id), str(world.target.ticket_ids[2])
    other_ticket, other_user = str(world.bystander.ticket_ids[0]), str(world.bystander.user_ids[0])
    cases = [
        (["enqueue", "mint", "--tenant", tenant, "--ticket", other_ticket], "unknown ticket"),
        (["enqueue", "mint", "--tenant", str(uuid.uuid4()), "--ticket", ticket], "unknown ticket"),
        (["token", "create", "--tenant", tenant, "--name", "x", "--admin", "--user", other_user],
         "no such user in that tenant"),
        (["token", "create", "--tenant", tenant, "--name", "a\x00b"], "control character"),
        (["token", "create", "--tenant", tenant, "--name", "a\nb"], "control character"),
        (["token", "create", "--tenant", tenant, "--name", "\udcff"], "not valid UTF-8"),
        (["token", "create", "--tenant", tenant, "--name", "n", "--ttl", "999999w"],
         "longer than 3650 days"),
        (["token", "create", "--tenant", tenant, "--name", "n", "--ttl", "\u0661\u0662d"],
         "not a positive duration"),
        (["seed", "--tickets", "1", "--tenant-name", "\udcff"], "not valid UTF-8"),
        (["seed", "--tickets", "1", "--tenant-name", ""], "must not be empty"),
        (["seed", "--tickets", "1", "--tenant-name", "n" * 201], "at most 200"),
        (["tx", "abandon", str(world.queued_request), "--reason", "a\x00b"], "control character"),
        (["tx", "abandon", str(world.queued_request), "--reason", "r" * 501], "at most 500"),
        (["reconcile", "--older-than", "9" * 400], "longer than 3650 days"),
        (["reconcile", "--older-than", "99999999999d", "--tenant", tenant], "longer than"),
        (["reconcile", "--limit", "abc"], "Invalid value for '--limit'"),
        (["reconcile", "--tenant", "x" * 100_000], "(100,000 characters) is not a UUID"),
        (["enqueue", "metadata", "--tenant", tenant, "--ticket", ticket, "--field", "ticket_id=x"],
         "ties the NFT to its ticket"),
        (["enqueue", "metadata", "--tenant", tenant, "--ticket", ticket, "--field", "seat"],
         "is not key=value"),
        (["enqueue", "metadata", "--tenant", tenant, "--ticket", ticket, "--field", "a=\x1b[2J"],
         "control character"),
        (["enqueue", "metadata", "--tenant", tenant, "--ticket", other_ticket, "--field", "a=b"],
         "unknown ticket"),
        (["event", "update-metadata", "--tenant", tenant, "--event", str(uuid.uuid4()),
          "--field", "uri=https://x.example"], "no event"),
        (["event", "update-metadata", "--tenant", tenant, "--event",
          str(world.bystander.event_id), "--field", "uri=https://x.example"], "no event"),
        (["event", "update-metadata", "--tenant", tenant, "--event", str(world.target.event_id)],
         "at least one field"),
        (["event", "verify", "--tenant", tenant, "--event", other_ticket], "no event"),
        (["event", "create-group", "--tenant", tenant, "--event", ticket], "no event"),
        (["event", "verify", "--tenant", tenant, "--event", "x" * 100], "is not a UUID"),
        (["enqueue", "verify", "--tenant", tenant, "--ticket", other_ticket], "unknown ticket"),
    ]
    for args, message in cases:
        outcome = harness.invoke(args)
        check(outcome, args, set())
        assert outcome.code == 2 and message in outcome.stderr, (args[:4], outcome.stderr)


def test_sql_in_a_name_is_stored_as_text(world: World, harness: Harness) -> None:
    name = "'; DROP TABLE tickets; --"
    args = ["token", "create", "--tenant", str(world.target.tenant_id), "--name", name, "--json"]
    outcome = harness.invoke(args)
    check(outcome, args, {"api_tokens"})
    assert outcome.code == 0 and outcome.changed == {"api_tokens"}
    assert harness.fetchval("SELECT count(*) FROM api_tokens WHERE name = $1", name) == 1


def _process(env: dict[str, str], args: list[str | bytes]) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "chainworker", *args],
        env={**os.environ, **env}, capture_output=True, timeout=60,
    )


def test_the_worst_arguments_as_a_real_process(
    world: World, cli_env: dict[str, str], harness: Harness
) -> None:
    tenant, request = str(world.target.tenant_id), str(world.queued_request)
    cases: list[tuple[list[str | bytes], str]] = [
        # Bytes that are not UTF-8 arrive as lone surrogates.
        (["token", "create", "--tenant", tenant, "--name", b"\xff\xfe"], "not valid UTF-8"),
        (["seed", "--tickets", "1", "--tenant-name", b"caf\xe9"], "not valid UTF-8"),
        (["tx", "abandon", request, "--reason", "x" * 100_000], "at most 500"),
        (["tx", "abandon", request, "--reason", "line\nbreak"], "control character"),
        (["enqueue", "mint", "--tenant", "' OR 1=1 --", "--ticket", "'; DROP TABLE tickets; --"],
         "is not a UUID"),
        (["reconcile", "--limit", "'; DROP TABLE tickets; --"], "Invalid value for '--limit'"),
        (["reconcile", "--older-than", "9" * 400], "longer than 3650 days"),
    ]
    before = harness.digests()
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda case: _process(cli_env, case[0]), cases))
    for (args, message), result in zip(cases, results, strict=True):
        stderr = result.stderr.decode(errors="replace")
        assert result.returncode == 2, (args[:4], stderr)
        assert len(stderr.splitlines()) == 1 and message in stderr, (args[:4], stderr)
        assert "Traceback" not in stderr
    assert harness.digests() == before
