"""An endpoint that lags: it serves the ledger as of N slots ago, as a node behind does."""

from __future__ import annotations

import base64

import httpx
from solana.rpc.async_api import AsyncClient
from solana.rpc.commitment import Commitment
from solana.rpc.models import TxOpts
from solders.keypair import Keypair
from solders.message import Message
from solders.pubkey import Pubkey
from solders.system_program import CreateAccountParams, create_account
from solders.transaction import VersionedTransaction
from solders.transaction_status import TransactionConfirmationStatus
from spl.token.constants import TOKEN_PROGRAM_ID
from spl.token.instructions import (
    create_idempotent_associated_token_account,
    get_associated_token_address,
    initialize_mint2,
    mint_to_checked,
)
from spl.token.models import InitializeMint2Params, MintToCheckedParams

from tests.localnet.helpers import SOL, funded, rpc, send, sol_transfer, step, wait_status

CONFIRMED = Commitment("confirmed")
PROCESSED = Commitment("processed")
SKIP = TxOpts(skip_preflight=True, max_retries=0)
LAG = 4
PROCESSED_STATUS = TransactionConfirmationStatus.Processed
CONFIRMED_STATUS = TransactionConfirmationStatus.Confirmed


async def _transfer_with(client: AsyncClient, payer: Keypair, destination: Pubkey):
    latest = (await client.get_latest_blockhash(PROCESSED)).value
    message = Message.new_with_blockhash(
        [sol_transfer(payer, destination, SOL)], payer.pubkey(), latest.blockhash
    )
    return VersionedTransaction(message, [payer])


async def test_reads_are_as_of_lag_slots_ago(localnet_endpoints_faults):
    node = localnet_endpoints_faults
    async with (
        AsyncClient(node.rpc_urls[0], commitment=CONFIRMED) as fresh,
        AsyncClient(node.rpc_urls[1], commitment=CONFIRMED) as lagging,
    ):
        payer = await funded(fresh)
        destination = Keypair().pubkey()
        node.set_faults(clock_frozen=True)
        node.set_faults(endpoint=1, lag_slots=LAG)
        transaction = await _transfer_with(fresh, payer, destination)
        signature = (await fresh.send_raw_transaction(bytes(transaction), SKIP)).value
        step(node)  # it lands in this block

        slot = (await fresh.get_slot(PROCESSED)).value
        height = (await fresh.get_block_height(PROCESSED)).value
        assert (await lagging.get_slot(PROCESSED)).value == slot - LAG
        assert (await lagging.get_block_height(PROCESSED)).value == height - LAG
        block_config = {"transactionDetails": "none", "commitment": "confirmed"}
        then = (await rpc(node.rpc_url, "getBlock", [slot - LAG, block_config]))["result"]
        latest = (await lagging.get_latest_blockhash(PROCESSED)).value
        assert str(latest.blockhash) == then["blockhash"]
        assert latest.last_valid_block_height == then["blockHeight"] + 150

        assert (await fresh.get_balance(destination, PROCESSED)).value == SOL
        assert (await lagging.get_balance(destination, PROCESSED)).value == 0
        assert (await lagging.get_account_info(destination, PROCESSED)).value is None
        assert (await lagging.get_multiple_accounts([destination], PROCESSED)).value == [None]
        assert (await lagging.get_signature_statuses([signature])).value[0] is None

        step(node, LAG - 1)
        assert (await lagging.get_signature_statuses([signature])).value[0] is None
        step(node)  # the lagged view reaches the block it landed in
        status = (await lagging.get_signature_statuses([signature])).value[0]
        assert status is not None and status.confirmation_status == PROCESSED_STATUS
        assert status.confirmations == 0  # judged from the lagged slot
        assert (await lagging.get_balance(destination, PROCESSED)).value == SOL
        assert (await lagging.get_balance(destination, CONFIRMED)).value == 0
        fresh_status = (await fresh.get_signature_statuses([signature])).value[0]
        assert (
            fresh_status.confirmation_status == CONFIRMED_STATUS
            and fresh_status.confirmations == LAG
        )
        step(node)
        status = (await lagging.get_signature_statuses([signature])).value[0]
        assert status.confirmation_status == CONFIRMED_STATUS
        assert (await lagging.get_balance(destination, CONFIRMED)).value == SOL


async def test_a_blockhash_newer_than_its_view_is_not_found(localnet_endpoints_faults):
    node = localnet_endpoints_faults
    async with (
        AsyncClient(node.rpc_urls[0], commitment=CONFIRMED) as fresh,
        AsyncClient(node.rpc_urls[1], commitment=CONFIRMED) as lagging,
    ):
        payer = await funded(fresh)
        node.set_faults(clock_frozen=True)
        node.set_faults(endpoint=1, lag_slots=LAG)
        too_new = await _transfer_with(fresh, payer, Keypair().pubkey())
        encoded = base64.b64encode(bytes(too_new)).decode()
        for skip in (True, False):
            config = {
                "encoding": "base64",
                "skipPreflight": skip,
                "preflightCommitment": "processed",
            }
            answer = await rpc(node.rpc_urls[1], "sendTransaction", [encoded, config])
            assert answer["error"]["code"] == -32002
            assert (
                answer["error"]["message"] == "Transaction simulation failed: Blockhash not found"
            )
            assert answer["error"]["data"]["err"] == "BlockhashNotFound"
        valid = await rpc(
            node.rpc_urls[1],
            "isBlockhashValid",
            [str(too_new.message.recent_blockhash), {"commitment": "processed"}],
        )
        assert valid["result"]["value"] is False

        # A blockhash it has seen is forwarded to the one ledger.
        known = await _transfer_with(lagging, payer, Keypair().pubkey())
        signature = (await lagging.send_raw_transaction(bytes(known), SKIP)).value
        step(node)
        assert (await fresh.get_signature_statuses([signature])).value[0] is not None


async def test_token_reads_lag_too(localnet_endpoints_faults):
    node = localnet_endpoints_faults
    async with (
        AsyncClient(node.rpc_urls[0], commitment=CONFIRMED) as fresh,
        AsyncClient(node.rpc_urls[1], commitment=CONFIRMED) as lagging,
    ):
        payer = await funded(fresh)
        mint = Keypair()
        holder = get_associated_token_address(payer.pubkey(), mint.pubkey(), TOKEN_PROGRAM_ID)
        rent = (await fresh.get_minimum_balance_for_rent_exemption(82)).value

        def mint_to(amount: int):
            return mint_to_checked(
                MintToCheckedParams(
                    program_id=TOKEN_PROGRAM_ID,
                    mint=mint.pubkey(),
                    dest=holder,
                    mint_authority=payer.pubkey(),
                    amount=amount,
                    decimals=0,
                )
            )

        created = await send(
            fresh,
            [
                create_account(
                    CreateAccountParams(
                        from_pubkey=payer.pubkey(),
                        to_pubkey=mint.pubkey(),
                        lamports=rent,
                        space=82,
                        owner=TOKEN_PROGRAM_ID,
                    )
                ),
                initialize_mint2(
                    InitializeMint2Params(
                        decimals=0,
                        program_id=TOKEN_PROGRAM_ID,
                        mint=mint.pubkey(),
                        mint_authority=payer.pubkey(),
                    )
                ),
                create_idempotent_associated_token_account(
                    payer.pubkey(), payer.pubkey(), mint.pubkey(), TOKEN_PROGRAM_ID
                ),
                mint_to(5),
            ],
            payer,
            mint,
        )
        await wait_status(fresh, created, "confirmed")
        node.set_faults(clock_frozen=True)
        step(node, LAG)  # the mint is old enough for the lagging endpoint to know it
        node.set_faults(endpoint=1, lag_slots=LAG)
        await send(fresh, [mint_to(7)], payer, skip_preflight=True)
        step(node)
        assert (await fresh.get_token_supply(mint.pubkey(), PROCESSED)).value.amount == "12"
        assert (await lagging.get_token_supply(mint.pubkey(), PROCESSED)).value.amount == "5"
        balance = (await lagging.get_token_account_balance(holder, PROCESSED)).value
        assert balance.amount == "5"
        step(node, LAG)
        assert (await lagging.get_token_supply(mint.pubkey(), PROCESSED)).value.amount == "12"


async def test_far_behind_is_unhealthy(localnet_endpoints_faults):
    node = localnet_endpoints_faults
    node.set_faults(warp_slots=140)  # at least that much history, whatever ran before
    node.set_faults(endpoint=2, lag_slots=130)
    answer = await rpc(node.rpc_urls[2], "getHealth")
    assert answer["error"] == {
        "code": -32005,
        "message": "Node is behind by 130 slots",
        "data": {"numSlotsBehind": 130},
    }
    async with httpx.AsyncClient() as http:
        assert (await http.get(f"{node.rpc_urls[2]}/health")).text == "behind"
        assert (await http.get(f"{node.rpc_urls[0]}/health")).text == "ok"
    assert (await rpc(node.rpc_urls[0], "getHealth"))["result"] == "ok"
