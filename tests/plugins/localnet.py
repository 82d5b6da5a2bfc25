"""Pytest fixtures: a localnet subprocess for the session, and fault reset per test.

Load with `pytest_plugins = ["tests.plugins.localnet"]`. The localnet runs with
a 50 ms slot, so a 150-block blockhash window passes in about 8 seconds.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from chainworker.localnet.process import LocalnetProcess, start_localnet

LOCALNET_SLOT_MS = 50


@pytest.fixture(scope="session")
def localnet() -> Iterator[LocalnetProcess]:
    with start_localnet(slot_ms=LOCALNET_SLOT_MS, seed=7) as node:
        yield node


@pytest.fixture
def localnet_faults(localnet: LocalnetProcess) -> Iterator[LocalnetProcess]:
    """The session localnet, with every fault cleared after the test."""
    localnet.clear_faults()
    yield localnet
    localnet.clear_faults()
