"""A bounded slice of the reliability campaign (bench/chaos.py): every fault at once, on a
small load, with every invariant checked from the database and the chain.

Its own scratch PostgreSQL and Valkey (embedded), its own localnet of three endpoints:
the machine's servers are never restarted or flushed.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

# The bench is a directory of scripts, not a package: its modules import each other by name.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

from chaos import campaign_run
from chaos_stack import Config


@pytest.mark.chaos
@pytest.mark.timeout(300)
async def test_a_bounded_campaign_keeps_every_promise(tmp_path: Path) -> None:
    config = Config(
        tickets=120, workers=2, kills=3, scale=0.12, seed=7, settle_seconds=120,
        report=tmp_path / "chaos.md",
    )
    ok, report = await campaign_run(config)
    assert ok, report
