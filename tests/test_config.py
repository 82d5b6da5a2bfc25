"""Settings: one object, plain names, a bad value stops the program with one line."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from chainworker.config import SettingsError, load_settings


def test_rpc_urls_are_comma_separated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOLANA_RPC_URLS", "http://a:8899, https://b.example/rpc")
    assert load_settings().solana_rpc_urls == ["http://a:8899", "https://b.example/rpc"]


@pytest.mark.parametrize(
    ("name", "value", "words"),
    [
        ("SOLANA_RPC_URLS", "ftp://x", "SOLANA_RPC_URLS"),
        ("SOLANA_RPC_URLS", " , ", "at least one URL"),
        ("DATABASE_URL", "mysql://x", "DATABASE_URL"),
        ("MAX_RETRIES", "-1", "MAX_RETRIES"),
        ("STATUS_BATCH_SIZE", "257", "STATUS_BATCH_SIZE"),
        ("COMMITMENT", "rooted", "COMMITMENT"),
        ("REDIS_URL", "http://x", "REDIS_URL"),
    ],
)
def test_bad_value_names_the_setting(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, words: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as caught:
        load_settings()
    message = str(caught.value)
    assert words in message
    assert "\n" not in message


def test_cli_stops_at_start_with_one_line() -> None:
    env = {**os.environ, "SOLANA_RPC_URLS": "not-a-url"}
    result = subprocess.run(
        [sys.executable, "-m", "chainworker", "services"],
        env=env, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "SOLANA_RPC_URLS" in lines[0]


def test_secrets_do_not_show_in_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MINT_SEED", "super-secret-seed-value")
    settings = load_settings()
    assert "super-secret-seed-value" not in repr(settings)
    assert settings.mint_seed is not None
    assert settings.mint_seed.get_secret_value() == "super-secret-seed-value"
