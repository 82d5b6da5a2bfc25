"""scripts/deploy-check's own logic, without Docker: its verdict on a ticket read back
through the API, the URLs it derives, its refusals. The check itself is run by hand
(README "Deploy check"): it builds images and takes minutes."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "deploy_check.py"
GROUP = "9xV84QrYmysA6f1vxEoNAU1xQhkjL7Wbmg48iVSJtrKd"


@pytest.fixture(scope="module")
def check() -> ModuleType:
    spec = importlib.util.spec_from_file_location("deploy_check", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _agreeing() -> dict[str, Any]:
    return {
        "status": "minted",
        "token_mint": "Mint1111111111111111111111111111111111111",
        "holder": {"owner": "Owner111111111111111111111111111111111111", "amount": 1},
        "mint_closed": False,
        "membership": {"group": GROUP, "member_group": GROUP, "verified": True},
    }


def test_a_minted_held_member_ticket_agrees(check: ModuleType) -> None:
    assert check.chain_problem(200, _agreeing(), GROUP) is None


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"status": "sold"}, "status sold"),
        ({"token_mint": None}, "status minted, mint None"),
        ({"holder": {"owner": None, "amount": 1}}, "holder"),
        ({"holder": {"owner": "x", "amount": 0}}, "holder"),
        ({"holder": None}, "holder"),
        ({"mint_closed": True}, "mint closed"),
        ({"membership": {"member_group": None, "verified": False}}, "membership"),
        ({"membership": {"member_group": "Other", "verified": True}}, "membership"),
    ],
)
def test_each_disagreement_is_named(
    check: ModuleType, change: dict[str, Any], expected: str
) -> None:
    body = {**_agreeing(), **change}
    problem = check.chain_problem(200, body, GROUP)
    assert problem is not None and problem.startswith(expected)


def test_an_error_answer_is_a_problem(check: ModuleType) -> None:
    assert check.chain_problem(404, {"title": "not found"}, GROUP) == "HTTP 404"


def test_the_check_database_and_app_role_urls(check: ModuleType) -> None:
    admin = "postgresql://postgres:pw@db.internal:5433/postgres"
    assert check.with_database(admin, "chainworker_check_1") == (
        "postgresql://postgres:pw@db.internal:5433/chainworker_check_1"
    )
    assert check.with_user(admin, "chainworker_app") == (
        "postgresql://chainworker_app@db.internal:5433/postgres"
    )


def test_it_refuses_a_ticket_count_out_of_range() -> None:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--tickets", "0"], capture_output=True, text=True
    )
    assert done.returncode == 2
    assert "--tickets must be between 1 and 1000" in done.stderr
