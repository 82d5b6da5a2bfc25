"""The localnet started on a thread of the calling process, for embedding in other programs."""

from __future__ import annotations

import asyncio

import httpx
from solana.rpc.async_api import AsyncClient
from solana.rpc.commitment import Processed
from solders.keypair import Keypair

from chainworker.localnet.process import run_in_thread


async def test_in_process_localnet_serves_rpc_and_stops() -> None:
    node = run_in_thread(slot_ms=50, faults={"http_error_rate": 0.0})
    try:
        async with AsyncClient(node.rpc_url) as client, httpx.AsyncClient(timeout=5) as http:
            assert (await client.is_connected()) is True
            wallet = Keypair().pubkey()
            await client.request_airdrop(wallet, 1_000_000_000)
            first = (await client.get_slot()).value
            for _ in range(100):
                if (await client.get_balance(wallet, commitment=Processed)).value:
                    break
                await asyncio.sleep(0.05)
            assert (await client.get_balance(wallet, commitment=Processed)).value == 10**9
            assert (await client.get_slot()).value >= first
            assert (await http.get(node.faults_url)).json()["drop_rate"] == 0.0
    finally:
        node.stop()
    async with httpx.AsyncClient(timeout=1) as http:
        try:
            await http.post(node.rpc_url, json={"jsonrpc": "2.0", "id": 1, "method": "getHealth"})
        except httpx.HTTPError:
            return
    raise AssertionError("the localnet still answers after stop()")


async def test_in_process_localnet_with_two_endpoints() -> None:
    node = run_in_thread(slot_ms=50, endpoints=2)
    try:
        assert len(set(node.rpc_urls)) == 2
        node.set_faults(endpoint=0, down=True)
        async with httpx.AsyncClient(timeout=5) as http:
            body = {"jsonrpc": "2.0", "id": 1, "method": "getHealth"}
            assert (await http.post(node.rpc_urls[1], json=body)).json()["result"] == "ok"
            try:
                await http.post(node.rpc_url, json=body)
            except httpx.ConnectError:
                pass
            else:
                raise AssertionError("endpoint 0 still answers while down")
        node.clear_faults()
        async with httpx.AsyncClient(timeout=5) as http:
            assert (await http.post(node.rpc_url, json=body)).json()["result"] == "ok"
    finally:
        node.stop()
