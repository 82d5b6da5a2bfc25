"""The CLI as an operator runs it: what it prints holds no credential, key or seed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from solders.keypair import Keypair

AUTHORITY = Keypair()
SECRETS = {
    "MINT_SEED": "mint-seed-never-printed-0123456789abcdef",
    "CUSTODIAL_SEED": "custodial-seed-never-printed-0123456789abcdef",
    "AUTHORITY_KEYPAIR": str(AUTHORITY),
}


def chainworker(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "chainworker", *args],
        env={**os.environ, "COLUMNS": "200", **env},
        capture_output=True, text=True, timeout=60,
    )


def test_services_shows_where_without_user_password_or_query(tmp_path: Path) -> None:
    result = chainworker(
        "services",
        STATE_DIR=str(tmp_path),
        DATABASE_URL="postgresql://chainworker_app:PGPASSWORD@127.0.0.1:5432/cw?password=PGQUERY",
        REDIS_URL="redis://chainworker:REDISPASSWORD@127.0.0.1:6379/0",
    )
    assert result.returncode == 0, result.stderr
    assert "postgresql://127.0.0.1:5432" in result.stdout
    assert "redis://127.0.0.1:6379" in result.stdout
    for secret in ("PGPASSWORD", "PGQUERY", "REDISPASSWORD", "chainworker_app", "chainworker:"):
        assert secret not in result.stdout + result.stderr


@pytest.mark.parametrize("fmt", ["json", "console"])
def test_an_unforeseen_failure_is_one_log_event_without_locals_or_secrets(
    redis_url: str, tmp_path: Path, fmt: str
) -> None:
    # `reconcile --apply` loads the authority and the seeds into local variables, then
    # opens the pool: a port that is not a number fails inside asyncpg, unforeseen.
    result = chainworker(
        "reconcile", "--apply",
        LOG_FORMAT=fmt,
        STATE_DIR=str(tmp_path),
        DATABASE_URL="postgresql://chainworker_app:PGPASSWORD@127.0.0.1:notaport/cw",
        REDIS_URL=redis_url,
        SOLANA_RPC_URLS="https://rpc.example.com/v2/RPCPATHKEY?api-key=RPCQUERYKEY",
        **SECRETS,
    )
    assert result.returncode == 2
    output = result.stdout + result.stderr
    for secret in (*SECRETS.values(), "PGPASSWORD", "RPCPATHKEY", "RPCQUERYKEY"):
        assert secret not in output
    assert str(list(bytes(AUTHORITY))) not in output
    # Rich tracebacks draw boxes and list each frame's locals; a plain one does neither.
    assert "╭" not in output and "mint_seed =" not in output and "authority =" not in output
    if fmt == "json":
        (line,) = result.stderr.splitlines()
        event = json.loads(line)
        assert (event["event"], event["level"]) == ("command failed", "error")
        assert event["exception"].rstrip().endswith(
            "ValueError: invalid literal for int() with base 10: 'notaport'"
        )
    else:
        assert "command failed" in result.stderr
        assert "Traceback (most recent call last)" in result.stderr
