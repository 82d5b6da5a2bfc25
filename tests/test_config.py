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
        # three ids of 36 characters and 10 more: 118 bytes, one over a mint's URI bound
        ("NFT_URI_TEMPLATE", "https://t/{tenant_id}{event_id}{ticket_id}", "at most 117"),
        ("NFT_URI_TEMPLATE", "https://t.example/{ticket}", "may use only"),
        ("NFT_URI_TEMPLATE", "https://t.example/{ticket_id.nope}", "may use only"),
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


def test_repr_and_str_show_urls_as_scheme_host_and_port_only() -> None:
    import rich.pretty

    settings = load_settings(
        database_url="postgresql://chainworker_app:DBPASSWORD@db.internal:5432/cw?sslpassword=DBQ",
        database_admin_url="postgresql://chainworker_owner:OWNERPASSWORD@db.internal/cw",
        redis_url="rediss://default:REDISPASSWORD@cache.internal:6380/0",
        solana_rpc_urls="https://rpc.example.com/v2/PATHKEY?api-key=QUERYKEY,http://127.0.0.1:8899",
        mint_seed="MINTSEED" * 5,
        custodial_seed="CUSTODIALSEED" * 3,
        authority_keypair="AUTHORITYSECRET",
    )
    secrets = [
        "DBPASSWORD", "DBQ", "OWNERPASSWORD", "REDISPASSWORD", "PATHKEY", "QUERYKEY",
        "MINTSEED", "CUSTODIALSEED", "AUTHORITYSECRET", "chainworker_app", "chainworker_owner",
    ]  # fmt: skip
    # rich's pretty printer is what renders objects in rich tracebacks.
    for shown in (repr(settings), str(settings), rich.pretty.pretty_repr(settings)):
        for secret in secrets:
            assert secret not in shown
        assert "'postgresql://db.internal:5432'" in shown
        assert "'rediss://cache.internal:6380'" in shown
        assert "'https://rpc.example.com'" in shown and "'http://127.0.0.1:8899'" in shown
    # Only what is shown changes, not the values.
    assert settings.redis_url == "rediss://default:REDISPASSWORD@cache.internal:6380/0"


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("ftp://user:SECRETKEY@host/path?api-key=SECRETQ", "ftp://host is not an http(s) URL"),
        ("https://user:SECRETKEY@host:SECRETPORT/SECRETPATH", "https://host has no valid host"),
        ("https://user:SECRETKEY@/SECRETPATH?k=SECRETQ", "https:// has no valid host"),
        ("SECRETKEY@host/SECRETPATH", "[redacted] is not an http(s) URL"),
    ],
)
def test_a_bad_rpc_url_is_named_without_its_credentials_path_or_query(
    monkeypatch: pytest.MonkeyPatch, value: str, shown: str
) -> None:
    monkeypatch.setenv("SOLANA_RPC_URLS", f"http://127.0.0.1:8899,{value}")
    with pytest.raises(SettingsError) as caught:
        load_settings()
    message = str(caught.value)
    assert shown in message
    assert "SECRET" not in message and "user" not in message


def test_cli_names_a_bad_rpc_url_in_one_line_without_its_secrets() -> None:
    env = {**os.environ, "SOLANA_RPC_URLS": "ftp://user:SECRETKEY@host/path?api-key=SECRETQ"}
    result = subprocess.run(
        [sys.executable, "-m", "chainworker", "services"],
        env=env, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 2
    assert result.stdout == ""
    (line,) = result.stderr.strip().splitlines()
    assert line == (
        "chainworker: setting SOLANA_RPC_URLS: Value error, ftp://host is not an http(s) URL"
    )
    for part in ("SECRETKEY", "SECRETQ", "user", "path", "api-key"):
        assert part not in result.stderr


@pytest.mark.parametrize(
    ("env", "words"),
    [
        ({"FEE_PAYER_KEYPAIRS": "a.json", "FEE_PAYER_COUNT": "2"}, "not both"),
        ({"FEE_PAYER_SEED": "s" * 32}, "FEE_PAYER_COUNT"),
        ({"FEE_PAYER_COUNT": "65"}, "FEE_PAYER_COUNT"),
        ({"PRIORITY_FEE_RAISE_FACTOR": "0.5"}, "PRIORITY_FEE_RAISE_FACTOR"),
        # A rotation's previous authority: one way, and a label only with its token.
        ({"PREVIOUS_AUTHORITY_PKCS11_KEY_LABEL": "old"}, "PKCS11_MODULE"),
        ({"PREVIOUS_AUTHORITY_PKCS11_KEY_LABEL": "old", "PKCS11_MODULE": "/m.so",
          "PKCS11_TOKEN_LABEL": "t", "PKCS11_PIN": "1", "AUTHORITY_PKCS11_KEY_LABEL": "new",
          "PREVIOUS_AUTHORITY_KEYPAIR": "old.json"}, "not both"),
        # A seed in the token: one way, and only with the token.
        ({"CUSTODIAL_SEED_PKCS11_KEY_LABEL": "c"}, "PKCS11_MODULE"),
        ({"MINT_SEED_PKCS11_KEY_LABEL": "m", "MINT_SEED": "s" * 40, "PKCS11_MODULE": "/m.so",
          "PKCS11_TOKEN_LABEL": "t", "PKCS11_PIN": "1"}, "MINT_SEED: set either it"),
    ],
)
def test_a_fee_payer_pool_set_up_wrong_stops_at_start_in_one_line(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], words: str
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert words.lower() in str(caught.value).lower()
    assert "\n" not in str(caught.value)
