"""Several JSON-RPC endpoints over one ledger: shared state, separate faults, one down."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from solana.rpc.async_api import AsyncClient
from solana.rpc.commitment import Commitment
from solders.keypair import Keypair

from tests.localnet.helpers import SOL, funded, post, request, rpc, send, sol_transfer

CONFIRMED = Commitment("confirmed")
PROCESSED = {"commitment": "processed"}


async def test_a_transaction_sent_through_one_is_seen_through_every_other(
    localnet_endpoints_faults,
):
    node = localnet_endpoints_faults
    urls = node.rpc_urls
    assert len(set(urls)) == 3 and urls[0] == node.rpc_url
    async with (
        AsyncClient(urls[0], commitment=CONFIRMED) as first,
        AsyncClient(urls[2], commitment=CONFIRMED) as last,
    ):
        payer = await funded(last)
        destination = Keypair().pubkey()
        signature = await send(last, [sol_transfer(payer, destination, SOL)], payer)
        for _ in range(200):
            status = (await first.get_signature_statuses([signature])).value[0]
            if status is not None and int(status.confirmation_status or 0) >= 1:
                break
            await asyncio.sleep(0.02)
        assert status is not None and status.err is None
        for url in urls:
            async with AsyncClient(url, commitment=CONFIRMED) as client:
                assert (await client.get_balance(destination)).value == SOL
        node.set_faults(clock_frozen=True)  # one slot clock: every endpoint stops with it
        slots = {(await rpc(url, "getSlot", [PROCESSED]))["result"] for url in urls}
        assert len(slots) == 1


async def test_endpoint_faults_are_per_endpoint_and_ledger_faults_shared(
    localnet_endpoints_faults,
):
    node = localnet_endpoints_faults
    first, second, third = node.rpc_urls
    merged = node.set_faults(endpoint=1, http_error_rate=1.0, http_error_status=503)
    assert merged["http_error_rate"] == 1.0
    assert (await post(second, request("getSlot"))).status_code == 503
    for url in (first, third):
        assert "result" in (await post(url, request("getSlot"))).json()

    node.set_faults(endpoint=2, drop_rate=0.5)  # a ledger fault, through endpoint 2's path
    assert node.get_faults(endpoint=0)["drop_rate"] == 0.5
    async with httpx.AsyncClient() as http:
        own = (await http.get(f"{first}/admin/faults")).json()
        assert own["drop_rate"] == 0.5 and own["http_error_rate"] == 0.0
        assert (await http.get(f"{second}/admin/faults")).json()["http_error_rate"] == 1.0
        listed = (await http.get(f"{third}/admin/endpoints")).json()
    assert [e["faults"]["http_error_rate"] for e in listed["endpoints"]] == [0.0, 1.0, 0.0]
    assert listed["ledger"]["drop_rate"] == 0.5

    cleared = node.clear_faults(endpoint=1)  # only endpoint 1's own faults
    assert cleared["http_error_rate"] == 0.0 and cleared["drop_rate"] == 0.5
    assert "result" in (await post(second, request("getSlot"))).json()
    assert node.clear_faults()["drop_rate"] == 0.0


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("lag_slots", -1),
        ("lag_slots", 10_000),
        ("garbage_rate", 2),
        ("garbage_kinds", ["nonsense"]),
        ("garbage_kinds", []),
        ("garbage_methods", "getSlot"),
        ("stall_methods", "sendTransaction"),
        ("stall_methods", [""]),
        ("slowloris_rate", -0.5),
        ("slowloris_mode", "fast"),
        ("slowloris_byte_seconds", -1),
        ("down", "yes"),
    ],
)
async def test_bad_values_are_refused_naming_the_field(localnet_endpoints_faults, field, value):
    url = f"{localnet_endpoints_faults.rpc_urls[1]}/admin/endpoints/2/faults"
    async with httpx.AsyncClient() as http:
        bad = await http.post(url, json={"lag_slots": 3, field: value})
        assert bad.status_code == 400 and field in bad.json()["error"]
        assert (await http.get(url)).json()["lag_slots"] == 0  # nothing was applied


async def test_unknown_endpoint_is_not_found(localnet_endpoints):
    async with httpx.AsyncClient() as http:
        missing = await http.get(f"{localnet_endpoints.rpc_url}/admin/endpoints/3/faults")
    assert missing.status_code == 404


async def test_a_down_endpoint_refuses_while_the_others_serve(localnet_endpoints_faults):
    node = localnet_endpoints_faults
    first, second, _ = node.rpc_urls
    async with httpx.AsyncClient(timeout=2) as pooled:
        assert "result" in (await pooled.post(second, json=request("getSlot"))).json()
        node.set_faults(endpoint=1, down=True)
        with pytest.raises(httpx.TransportError):  # the open connection was closed too
            await pooled.post(second, json=request("getSlot"))
    with pytest.raises(httpx.ConnectError):
        await post(second, request("getSlot"))
    assert [e["up"] for e in node.endpoints()] == [True, False, True]
    assert node.get_faults(endpoint=1)["down"] is True

    async with AsyncClient(first, commitment=CONFIRMED) as client:
        payer = await funded(client)  # the cluster goes on through endpoint 0

    node.set_faults(endpoint=1, down=False)
    async with AsyncClient(second, commitment=CONFIRMED) as client:
        assert (await client.get_balance(payer.pubkey())).value == 10 * SOL


async def test_an_endpoint_taken_down_through_its_own_port(localnet_endpoints_faults):
    node = localnet_endpoints_faults
    third = node.rpc_urls[2]
    async with httpx.AsyncClient() as http:
        answered = await http.post(f"{third}/admin/faults", json={"down": True})
    assert answered.status_code == 200 and answered.json()["down"] is True
    for _ in range(50):  # it stops listening once its answer is out
        try:
            await post(third, request("getSlot"), seconds=0.5)
        except httpx.ConnectError:
            break
        await asyncio.sleep(0.02)
    else:
        raise AssertionError("endpoint 2 still answers")
    node.clear_faults()  # through another port
    assert "result" in (await post(third, request("getSlot"))).json()


async def test_the_last_endpoint_up_cannot_go_down(localnet_endpoints_faults, localnet_faults):
    async with httpx.AsyncClient() as http:
        alone = await http.post(localnet_faults.faults_url, json={"down": True})
        assert alone.status_code == 400 and "down" in alone.json()["error"]
    node = localnet_endpoints_faults
    node.set_faults(endpoint=0, down=True)
    node.set_faults(endpoint=1, down=True)
    with pytest.raises(httpx.HTTPStatusError) as refused:
        node.set_faults(endpoint=2, down=True)
    assert refused.value.response.status_code == 400
    assert [e["up"] for e in node.endpoints()] == [False, False, True]
    node.clear_faults()
    assert [e["up"] for e in node.endpoints()] == [True, True, True]


def _port_is_free(url: str) -> bool:
    import socket
    from urllib.parse import urlsplit

    # As free_port asks for one (no SO_REUSEADDR): what another localnet would be given.
    parts = urlsplit(url)
    probe = socket.socket()
    try:
        probe.bind((parts.hostname or "127.0.0.1", parts.port or 0))
    except OSError:
        return False
    finally:
        probe.close()
    return True


async def test_a_down_endpoint_keeps_its_port_for_when_it_comes_back(localnet_endpoints_faults):
    """Nobody else can take the port meanwhile (another localnet of the same run did, and
    the endpoint could not come back up)."""
    node = localnet_endpoints_faults
    second = node.rpc_urls[1]
    node.set_faults(endpoint=1, down=True)
    for _ in range(50):  # the port is bound again once the listener has closed
        if not _port_is_free(second):
            break
        await asyncio.sleep(0.02)
    assert not _port_is_free(second)
    with pytest.raises(httpx.ConnectError):
        await post(second, request("getSlot"))
    node.set_faults(endpoint=1, down=False)
    assert "result" in (await post(second, request("getSlot"))).json()
