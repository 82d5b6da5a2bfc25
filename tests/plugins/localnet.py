"""Pytest fixtures: a localnet subprocess for the session, and fault reset per test.

Load with `pytest_plugins = ["tests.plugins.localnet"]`. The localnet runs with
a 50 ms slot, so a 150-block blockhash window passes in about 8 seconds.
`localnet_endpoints` is a second one, serving three endpoints over one ledger.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from chainworker.localnet.faults import MAX_LAG_SLOTS
from chainworker.localnet.process import LocalnetProcess, start_localnet

LOCALNET_SLOT_MS = 50
# A fresh ledger is younger than the lags tests set: a view "60 slots back" of a ledger at
# slot 20 would read the genesis block, and whether that goes back depends on how fast the
# test ran. Every ledger starts older than any lag the localnet allows.
HISTORY_SLOTS = MAX_LAG_SLOTS + 64


def _aged(node: LocalnetProcess) -> LocalnetProcess:
    node.set_faults(warp_slots=HISTORY_SLOTS)
    return node


@pytest.fixture(scope="session")
def localnet() -> Iterator[LocalnetProcess]:
    with start_localnet(slot_ms=LOCALNET_SLOT_MS, seed=7) as node:
        yield _aged(node)


@pytest.fixture
def localnet_faults(localnet: LocalnetProcess) -> Iterator[LocalnetProcess]:
    """The session localnet, with every fault cleared after the test."""
    localnet.clear_faults()
    yield localnet
    localnet.clear_faults()


@pytest.fixture(scope="session")
def localnet_endpoints() -> Iterator[LocalnetProcess]:
    """A localnet serving three JSON-RPC endpoints (`rpc_urls`) over one ledger."""
    with start_localnet(slot_ms=LOCALNET_SLOT_MS, seed=11, endpoints=3) as node:
        yield _aged(node)


@pytest.fixture
def localnet_endpoints_faults(localnet_endpoints: LocalnetProcess) -> Iterator[LocalnetProcess]:
    """The three-endpoint localnet, with every fault of every endpoint cleared after the test."""
    localnet_endpoints.clear_faults()
    yield localnet_endpoints
    localnet_endpoints.clear_faults()
