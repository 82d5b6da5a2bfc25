"""Structured logs: JSON lines with the bound context, and secrets never printed."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog
from pydantic import SecretStr
from solders.keypair import Keypair

from chainworker.chain import keys
from chainworker.config import load_settings
from chainworker.obs import logs


class Captured:
    def __init__(self, stream: io.StringIO) -> None:
        self.stream = stream

    def text(self) -> str:
        return self.stream.getvalue()

    def lines(self) -> list[dict[str, object]]:
        return [json.loads(line) for line in self.text().splitlines() if line.strip()]


def reset_logging() -> None:
    """Undo configure_logging, so that no test's handlers or secrets reach the next."""
    root = logging.getLogger()
    for handler in [h for h in root.handlers if h.get_name() == "chainworker"]:
        root.removeHandler(handler)
    root.setLevel(logging.WARNING)
    logs.clear_registered_secrets()
    logs.clear_log_context()
    structlog.reset_defaults()


@pytest.fixture
def captured() -> Iterator[Captured]:
    stream = io.StringIO()
    logs.configure_logging("DEBUG", "json", stream)
    yield Captured(stream)
    reset_logging()


def test_a_log_line_is_json_with_the_bound_fields(captured: Captured) -> None:
    with logs.log_context(
        tenant_id="7a1d4c2e-0000-4000-8000-000000000001",
        request_id="req-1",
        ticket_id=42,
        signature="5sig",
        attempt=2,
        job_id="job-9",
    ):
        logs.get_logger("chainworker.test").info("transaction sent", lamports=5000)
    logs.get_logger("chainworker.test").info("outside")

    first, second = captured.lines()
    assert first["event"] == "transaction sent"
    assert first["level"] == "info"
    assert first["logger"] == "chainworker.test"
    assert first["lamports"] == 5000
    assert "timestamp" in first
    assert {key: first[key] for key in logs.CONTEXT_KEYS} == {
        "tenant_id": "7a1d4c2e-0000-4000-8000-000000000001",
        "request_id": "req-1",
        "ticket_id": 42,
        "signature": "5sig",
        "attempt": 2,
        "job_id": "job-9",
    }
    assert not set(logs.CONTEXT_KEYS) & set(second)


def test_standard_library_loggers_share_the_format_and_context(captured: Captured) -> None:
    with logs.log_context(job_id="job-1"):
        logging.getLogger("arq.worker").warning("job %s took %.1fs", "mint_ticket", 1.25)
    (line,) = captured.lines()
    assert line == {
        "event": "job mint_ticket took 1.2s",
        "job_id": "job-1",
        "level": "warning",
        "logger": "arq.worker",
        "timestamp": line["timestamp"],
    }


async def test_context_follows_each_asyncio_task(captured: Captured) -> None:
    log = logs.get_logger("chainworker.test")

    async def job(job_id: str) -> None:
        with logs.log_context(job_id=job_id):
            await asyncio.sleep(0.01)
            log.info("done")

    await asyncio.gather(job("a"), job("b"), job("c"))
    done = [line for line in captured.lines() if line["event"] == "done"]
    assert sorted(str(line["job_id"]) for line in done) == ["a", "b", "c"]


def test_bind_log_context_refuses_unknown_keys() -> None:
    with pytest.raises(ValueError, match="password"):
        logs.bind_log_context(password="x")


def test_registered_secrets_never_appear_in_output(captured: Captured) -> None:
    keypair = Keypair()
    secret_key = str(keypair)
    signature = str(keypair.sign_message(b"ticket"))
    settings = load_settings(
        mint_seed="mint-seed-do-not-print",
        custodial_seed="custodial-seed-do-not-print",
        authority_keypair=secret_key,
        database_url="postgresql://chainworker_app:db-password-do-not-print@db:5432/cw",
        solana_rpc_urls="https://rpc.example.com/?api-key=rpc-key-do-not-print",
    )
    logs.register_settings_secrets(settings)
    secrets = [
        "mint-seed-do-not-print",
        "custodial-seed-do-not-print",
        secret_key,
        "db-password-do-not-print",
        "rpc-key-do-not-print",
    ]

    log = logs.get_logger("chainworker.test")
    with logs.log_context(signature=signature):
        log.info("seed is mint-seed-do-not-print", seed=settings.mint_seed)
        log.info("settings", values={"nested": ["custodial-seed-do-not-print"]})
        log.info("dsn", dsn=settings.database_url, rpc=settings.solana_rpc_urls)
        log.info("key file", contents=list(bytes(keypair)), text=str(list(bytes(keypair))))
        logging.getLogger("asyncpg").error("connect failed: %s", settings.database_url)
        try:
            raise RuntimeError(f"bad key {secret_key}")
        except RuntimeError:
            log.exception("loading the authority failed")

    output = captured.text()
    for secret in secrets:
        assert secret not in output
    assert str(list(bytes(keypair))) not in output
    assert output.count(logs.REDACTED) >= 8
    # A signature is 64 bytes of base58 too, but not a keypair: it stays readable.
    assert all(line["signature"] == signature for line in captured.lines())


def test_an_unregistered_keypair_is_still_redacted(captured: Captured) -> None:
    keypair = Keypair()
    logs.get_logger().warning("leaked", key=str(keypair), inline=f"key={keypair} end")
    (line,) = captured.lines()
    assert line["key"] == logs.REDACTED
    assert line["inline"] == f"key={logs.REDACTED} end"


def test_short_secrets_are_redacted_only_as_whole_values(captured: Captured) -> None:
    logs.register_secret(SecretStr("abc"))
    logs.get_logger().info("abcdef", value="abc")
    (line,) = captured.lines()
    assert line["value"] == logs.REDACTED
    assert line["event"] == "abcdef"


def test_console_format_is_not_json() -> None:
    stream = io.StringIO()
    try:
        logs.configure_logging("INFO", "console", stream)
        logs.get_logger("chainworker.test").info("hello", ticket_id=7)
    finally:
        reset_logging()
    text = stream.getvalue()
    assert "hello" in text
    assert "ticket_id=7" in text
    with pytest.raises(json.JSONDecodeError):
        json.loads(text)


def test_auto_format_is_json_when_not_a_terminal(captured: Captured) -> None:
    stream = io.StringIO()  # StringIO.isatty() is False
    logs.configure_logging("INFO", "auto", stream)
    logs.get_logger().info("auto")
    assert json.loads(stream.getvalue())["event"] == "auto"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("ftp://user:SECRET@host/path?api-key=SECRET", "ftp://host"),
        ("https://rpc.example.com/v2/SECRET?api-key=SECRET#SECRET", "https://rpc.example.com"),
        ("postgresql://app:SECRET@db:5432/cw?password=SECRET", "postgresql://db:5432"),
        ("redis://:SECRET@[::1]:6379/0", "redis://[::1]:6379"),
        ("http://user:SECRET@host:SECRET/x", "http://host"),
        ("postgresql://app@/cw?host=/run/SECRET&port=5432", "postgresql://"),
        ("http://[::1", logs.REDACTED),
        ("SECRET@host/path?k=SECRET", logs.REDACTED),
        ("host:SECRET", logs.REDACTED),
        ("", logs.REDACTED),
    ],
)
def test_redact_url_keeps_only_scheme_host_and_port(url: str, shown: str) -> None:
    assert logs.redact_url(url) == shown


@pytest.mark.parametrize("fmt", ["json", "console"])
def test_tracebacks_never_show_local_variables(fmt: logs.LogFormat) -> None:
    stream = io.StringIO()
    seed = b"an-unregistered-seed-held-in-a-local"
    key = Keypair()

    def derive(local_seed: bytes, local_key: Keypair) -> None:
        raise ValueError("derivation failed")

    try:
        logs.configure_logging("INFO", fmt, stream)
        try:
            derive(seed, key)
        except ValueError:
            logs.get_logger("chainworker.test").exception("failed")
    finally:
        reset_logging()
    text = stream.getvalue()
    assert "derivation failed" in text and "Traceback" in text
    assert seed.decode() not in text
    assert "local_seed" not in text and "local_key" not in text  # no locals listed


def test_configure_from_settings_uses_their_format_and_registers_their_secrets(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = load_settings(
        log_format="json", log_level="WARNING", mint_seed="mint-seed-from-settings-do-not-print"
    )
    try:
        logs.configure_from_settings(settings)
        log = logs.get_logger("chainworker.test")
        log.info("below the level")
        log.warning("seed mint-seed-from-settings-do-not-print")
    finally:
        reset_logging()
    (line,) = capsys.readouterr().err.splitlines()
    assert json.loads(line)["event"] == f"seed {logs.REDACTED}"


def test_a_seed_generated_in_the_state_dir_is_redacted(captured: Captured, tmp_path: Path) -> None:
    seed = keys.load_seed(None, tmp_path, "mint_seed", cluster="localnet").decode()
    logs.get_logger("chainworker.test").info(f"derived with {seed}")
    (line,) = captured.lines()
    assert seed not in captured.text()
    assert line["event"] == f"derived with {logs.REDACTED}"


def test_nested_contexts_add_fields_and_give_them_back(captured: Captured) -> None:
    log = logs.get_logger("chainworker.test")
    with logs.log_context(tenant_id="t-1"):
        with logs.log_context(job_id="j-1", tenant_id="t-2"):
            log.info("inner")
        log.info("outer", job_id="given")  # the event's own value wins
    log.info("none")
    inner, outer, none = captured.lines()
    assert (inner["tenant_id"], inner["job_id"]) == ("t-2", "j-1")
    assert (outer["tenant_id"], outer["job_id"]) == ("t-1", "given")
    assert not set(logs.CONTEXT_KEYS) & set(none)
