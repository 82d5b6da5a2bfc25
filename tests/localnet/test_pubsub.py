"""PubSub over WebSocket with solana-py's own websocket client."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
import websockets
from solana.rpc.async_api import AsyncClient
from solana.rpc.commitment import Commitment
from solana.rpc.models import TxOpts
from solana.rpc.websocket_api import SolanaWsClient
from solders.keypair import Keypair
from solders.rpc.config import RpcTransactionLogsFilter, RpcTransactionLogsFilterMentions
from solders.rpc.responses import (
    AccountNotification,
    LogsNotification,
    ProgramNotification,
    RootNotification,
    SignatureNotification,
    SlotNotification,
)
from solders.system_program import ID as SYSTEM_PROGRAM

from tests.localnet.helpers import SOL, funded, signed, sol_transfer

CONFIRMED = Commitment("confirmed")
PROCESSED = Commitment("processed")


@pytest.fixture
async def client(localnet):
    async with AsyncClient(localnet.rpc_url, commitment=CONFIRMED) as rpc:
        yield rpc


async def test_signature_account_and_logs(client, localnet):
    payer = await funded(client)
    destination = Keypair().pubkey()
    transaction, _ = await signed(client, [sol_transfer(payer, destination, SOL)], payer)
    signature = transaction.signatures[0]
    async with SolanaWsClient(localnet.ws_url) as ws:
        sig_sub = await ws.signature_subscribe(signature=signature, commitment=CONFIRMED)
        account_sub = await ws.account_subscribe(
            pubkey=destination, commitment=CONFIRMED, encoding="base64"
        )
        logs_sub = await ws.logs_subscribe(
            filter_=RpcTransactionLogsFilterMentions(destination), commitment=PROCESSED
        )
        await client.send_raw_transaction(bytes(transaction), TxOpts(skip_preflight=True))

        got: dict[type, Any] = {}
        while len(got) < 3:
            notification = await asyncio.wait_for(ws.recv(), 5)
            got.setdefault(type(notification), notification)
        logs = got[LogsNotification]
        assert logs.subscription == logs_sub.subscription_id
        assert logs.result.value.signature == signature and logs.result.value.err is None
        account = got[AccountNotification]
        assert account.subscription == account_sub.subscription_id
        assert account.result.value.lamports == SOL
        done = got[SignatureNotification]
        assert done.subscription == sig_sub.subscription_id and done.result.value.err is None
        await ws.unsubscribe(account_sub)
        await ws.unsubscribe(logs_sub)

        # A signature that already landed is notified at once.
        again = await ws.signature_subscribe(signature=signature, commitment=CONFIRMED)
        late = await asyncio.wait_for(ws.recv(), 5)
        assert isinstance(late, SignatureNotification)
        assert late.subscription == again.subscription_id


async def test_program_logs_all_slot_and_root(client, localnet):
    payer = await funded(client)
    async with SolanaWsClient(localnet.ws_url) as ws:
        slot_sub = await ws.slot_subscribe()
        first = await asyncio.wait_for(ws.recv(), 5)
        second = await asyncio.wait_for(ws.recv(), 5)
        assert isinstance(first, SlotNotification) and isinstance(second, SlotNotification)
        assert second.result.slot > first.result.slot
        await ws.unsubscribe(slot_sub)
        root_sub = await ws.root_subscribe()
        root = await asyncio.wait_for(ws.recv(), 5)
        assert isinstance(root, RootNotification)
        assert root.result >= 0
        await ws.unsubscribe(root_sub)

        program_sub = await ws.program_subscribe(
            program_id=SYSTEM_PROGRAM, commitment=PROCESSED, encoding="base64"
        )
        all_logs = await ws.logs_subscribe(
            filter_=RpcTransactionLogsFilter.All, commitment=PROCESSED
        )
        destination = Keypair().pubkey()
        transaction, _ = await signed(client, [sol_transfer(payer, destination, SOL)], payer)
        await client.send_raw_transaction(bytes(transaction), TxOpts(skip_preflight=True))
        seen = set()
        logged = set()
        while destination not in seen or transaction.signatures[0] not in logged:
            notification = await asyncio.wait_for(ws.recv(), 5)
            if isinstance(notification, ProgramNotification):
                assert notification.subscription == program_sub.subscription_id
                seen.add(notification.result.value.pubkey)
            elif isinstance(notification, LogsNotification):
                assert notification.subscription == all_logs.subscription_id
                logged.add(notification.result.value.signature)


async def test_bad_pubsub_requests(localnet):
    async with websockets.connect(localnet.ws_url) as ws:
        await ws.send("{not json")
        assert json.loads(await ws.recv())["error"]["code"] == -32700
        await ws.send(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "nopeSubscribe"}))
        assert json.loads(await ws.recv())["error"]["code"] == -32601
        await ws.send(
            json.dumps(
                {"jsonrpc": "2.0", "id": 2, "method": "accountSubscribe", "params": ["not-a-key"]}
            )
        )
        assert json.loads(await ws.recv())["error"]["code"] == -32602
        await ws.send(
            json.dumps({"jsonrpc": "2.0", "id": 3, "method": "slotUnsubscribe", "params": [999999]})
        )
        assert json.loads(await ws.recv())["error"]["code"] == -32602
