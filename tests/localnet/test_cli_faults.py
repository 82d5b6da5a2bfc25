"""The new faults from `chainworker localnet` flags."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import httpx
import pytest
import typer
from typer.testing import CliRunner

from chainworker.localnet.process import LocalnetProcess, start_localnet
from chainworker.ops import localnet_cli as cli
from tests.localnet.helpers import post, request

FLAGS = [
    "--fault-endpoints",
    "0,2",
    "--down",
    "--lag-slots",
    "3",
    "--garbage-rate",
    "0.25",
    "--garbage-kinds",
    "huge_integers,batch_ids",
    "--garbage-methods",
    "getSlot,getBalance",
    "--slowloris-rate",
    "0.5",
    "--slowloris-mode",
    "headers_only",
    "--slowloris-byte-seconds",
    "0.5",
]


@pytest.fixture(scope="module")
def flagged() -> Iterator[LocalnetProcess]:
    with start_localnet(slot_ms=50, endpoints=3, extra_args=FLAGS) as node:
        yield node


async def test_flags_apply_to_the_endpoints_named(flagged):
    endpoints = flagged.endpoints()
    assert [e["up"] for e in endpoints] == [False, True, False]
    for index in (0, 2):
        faults = endpoints[index]["faults"]
        assert faults["lag_slots"] == 3 and faults["garbage_rate"] == 0.25
        assert faults["garbage_kinds"] == ["huge_integers", "batch_ids"]
        assert faults["garbage_methods"] == ["getSlot", "getBalance"]
        assert faults["slowloris_rate"] == 0.5 and faults["slowloris_mode"] == "headers_only"
        assert faults["slowloris_byte_seconds"] == 0.5
    assert (
        endpoints[1]["faults"]["garbage_rate"] == 0.0 and endpoints[1]["faults"]["lag_slots"] == 0
    )
    with pytest.raises(httpx.ConnectError):
        await post(flagged.rpc_url, request("getSlot"))
    assert "result" in (await post(flagged.rpc_urls[1], request("getSlot"))).json()
    flagged.set_faults(endpoint=0, down=False, slowloris_rate=0.0, garbage_rate=0.0)
    assert "result" in (await post(flagged.rpc_url, request("getSlot"))).json()


@pytest.mark.parametrize(
    ("args", "complaint"),
    [
        (["--down"], "at least one endpoint"),
        (["--endpoints", "2", "--fault-endpoints", "0,1", "--down"], "at least one endpoint"),
        (["--endpoints", "2", "--fault-endpoints", "2"], "--fault-endpoints"),
        (["--endpoints", "3", "--endpoint-ports", "9001"], "--endpoint-ports"),
        (["--garbage-kinds", "lies"], "garbage_kinds"),
        (["--slowloris-mode", "fast"], "slowloris_mode"),
        (["--lag-slots", "100000"], "lag-slots"),
        (["--no-block-limits", "--block-unit-limit", "5"], "--no-block-limits"),
        (["--no-block-limits", "--account-unit-limit", "5"], "--no-block-limits"),
        (["--block-unit-limit", "-1"], "block-unit-limit"),
        (["--competing-unit-limit", "0"], "competing-unit-limit"),
        (["--competing-unit-limit", "2000000"], "competing_unit_limit"),
        (["--competing-accounts", "20000"], "competing_accounts"),
        (["--competing-rate", "1000000"], "competing_rate"),
        (["--competing-unit-price", "10000000000"], "competing_unit_price"),
        (["--pending-limit", "100000000"], "pending_limit"),
    ],
)
def test_bad_flags_are_refused_before_serving(args, complaint) -> None:
    app = typer.Typer()
    app.callback()(lambda: None)
    cli.register(app)
    result = CliRunner().invoke(app, ["localnet", *args])
    assert result.exit_code == 2
    assert complaint in " ".join(result.output.split())


LEADER_FLAGS = [
    "--block-unit-limit",
    "5000000",
    "--account-unit-limit",
    "700000",
    "--pending-limit",
    "500",
    "--competing-rate",
    "40",
    "--competing-unit-price",
    "50",
    "--competing-unit-limit",
    "10000",
    "--competing-accounts",
    "3",
]


async def test_leader_flags_set_the_node_own_settings() -> None:
    with start_localnet(slot_ms=50, extra_args=LEADER_FLAGS) as node:
        expected = {
            "block_unit_limit": 5_000_000,
            "account_unit_limit": 700_000,
            "pending_limit": 500,
            "competing_rate": 40.0,
            "competing_unit_price": 50,
            "competing_unit_limit": 10_000,
            "competing_accounts": 3,
        }
        assert {name: node.get_faults()[name] for name in expected} == expected
        assert node.stats()["leader"] == expected
        # The load runs on the real clock: 2 transactions a 50 ms slot.
        deadline = time.monotonic() + 10
        while node.stats()["scheduler"]["totals"]["competing"] < 10:
            assert time.monotonic() < deadline, node.stats()["scheduler"]
            await asyncio.sleep(0.05)
        body = (await post(node.rpc_url, request("getRecentPrioritizationFees"))).json()
        assert {fee["prioritizationFee"] for fee in body["result"]} == {50}
        node.set_faults(competing_rate=0, block_unit_limit=1)
        cleared = node.clear_faults()  # back to the flags, not the defaults
        assert {name: cleared[name] for name in expected} == expected


async def test_no_block_limits() -> None:
    with start_localnet(slot_ms=50, extra_args=["--no-block-limits"]) as node:
        faults = node.get_faults()
        assert (faults["block_unit_limit"], faults["account_unit_limit"]) == (0, 0)
