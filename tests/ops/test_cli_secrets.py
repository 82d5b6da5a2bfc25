"""The CLI as an operator runs it: what it prints holds no credential, key or seed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


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
