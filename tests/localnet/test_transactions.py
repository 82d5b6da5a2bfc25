"""Sending, confirming and reading transactions with stock solana-py."""

from __future__ import annotations

import asyncio
import base64

import pytest
from solana.rpc.async_api import AsyncClient
from solana.rpc.commitment import Commitment
from solana.rpc.core import RPCException
from solana.rpc.models import MemcmpOpts, TxOpts
from solders.hash import Hash
from solders.keypair import Keypair
from solders.message import Message
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.system_program import ID as SYSTEM_PROGRAM
from solders.transaction import VersionedTransaction

from tests.localnet.helpers import SOL, funded, send, signed, sol_transfer, wait_status

CONFIRMED = Commitment("confirmed")
FINALIZED = Commitment("finalized")
PROCESSED = Commitment("processed")


@pytest.fixture
async def client(localnet):
    async with AsyncClient(localnet.rpc_url, commitment=CONFIRMED) as rpc:
        yield rpc


async def test_transfer_with_max_retries_zero_confirms_by_block_height(client):
    payer = await funded(client)
    destination = Keypair().pubkey()
    transaction, last_valid = await signed(client, [sol_transfer(payer, destination, SOL)], payer)
    opts = TxOpts(
        skip_confirmation=False,
        preflight_commitment=CONFIRMED,
        max_retries=0,
        last_valid_block_height=last_valid,
    )
    sent = await client.send_raw_transaction(bytes(transaction), opts)
    status = (await client.confirm_transaction(sent.value, CONFIRMED, 0.05, last_valid)).value[0]
    assert status is not None and status.err is None
    assert (await client.get_balance(destination, CONFIRMED)).value == SOL
    assert (await client.get_balance(payer.pubkey(), CONFIRMED)).value == 9 * SOL - 5000


async def test_finalized_reads_do_not_see_confirmed_writes(client):
    payer = await funded(client)
    destination = Keypair().pubkey()
    signature = await send(client, [sol_transfer(payer, destination, 2 * SOL)], payer)
    await wait_status(client, signature, "confirmed")
    assert (await client.get_balance(destination, CONFIRMED)).value == 2 * SOL
    assert (await client.get_balance(destination, FINALIZED)).value == 0
    assert (await client.get_account_info(destination, FINALIZED)).value is None
    status = await wait_status(client, signature, "finalized")
    assert status.confirmations is None
    assert (await client.get_balance(destination, FINALIZED)).value == 2 * SOL


async def test_failed_instruction_lands_and_charges_the_fee(client):
    payer = await funded(client, SOL)
    destination = Keypair().pubkey()
    too_much = [sol_transfer(payer, destination, 5 * SOL)]
    with pytest.raises(RPCException) as preflight:
        await send(client, too_much, payer)
    assert "Transaction simulation failed" in str(preflight.value)
    assert "custom program error: 0x1" in str(preflight.value)

    signature = await send(client, too_much, payer, skip_preflight=True)
    status = await wait_status(client, signature, "confirmed")
    assert status.err is not None
    assert (await client.get_balance(payer.pubkey(), CONFIRMED)).value == SOL - 5000
    fetched = (await client.get_transaction(signature, "json", CONFIRMED)).value
    assert fetched is not None and fetched.transaction.meta.fee == 5000
    assert fetched.transaction.meta.err is not None
    assert any("insufficient lamports" in line for line in fetched.transaction.meta.log_messages)


async def test_signature_verification_failure(client):
    payer = await funded(client)
    transaction, _ = await signed(
        client, [sol_transfer(payer, Keypair().pubkey(), SOL // 100)], payer
    )
    raw = bytearray(bytes(transaction))
    raw[10] ^= 0xFF  # corrupt the signature
    with pytest.raises(RPCException, match="SignatureVerificationFailure"):
        await client.send_raw_transaction(bytes(raw), TxOpts(preflight_commitment=CONFIRMED))


async def test_duplicate_send_is_already_processed(client):
    payer = await funded(client)
    transaction, _ = await signed(
        client, [sol_transfer(payer, Keypair().pubkey(), SOL // 100)], payer
    )
    opts = TxOpts(preflight_commitment=CONFIRMED, max_retries=0)
    signature = (await client.send_raw_transaction(bytes(transaction), opts)).value
    await wait_status(client, signature, "processed")
    with pytest.raises(RPCException, match="already been processed"):
        await client.send_raw_transaction(bytes(transaction), opts)
    skipped = TxOpts(skip_preflight=True, max_retries=0)
    assert (await client.send_raw_transaction(bytes(transaction), skipped)).value == signature
    await asyncio.sleep(0.2)
    history = (await client.get_signatures_for_address(payer.pubkey(), commitment=CONFIRMED)).value
    assert [entry.signature for entry in history].count(signature) == 1


async def test_get_transaction_encodings_and_history(client):
    payer = await funded(client)
    destination = Keypair().pubkey()
    signatures = []
    for lamports in (SOL // 10, SOL // 5, SOL // 4):
        signatures.append(await send(client, [sol_transfer(payer, destination, lamports)], payer))
    for signature in signatures:
        await wait_status(client, signature, "confirmed")

    as_json = (await client.get_transaction(signatures[0], "json", CONFIRMED)).value
    assert as_json is not None
    meta = as_json.transaction.meta
    assert meta.pre_balances[1] == 0 and meta.post_balances[1] == SOL // 10
    assert meta.compute_units_consumed == 150
    as_base64 = (await client.get_transaction(signatures[0], "base64", CONFIRMED, 0)).value
    assert as_base64 is not None
    decoded = as_base64.transaction.transaction
    assert isinstance(decoded, VersionedTransaction) and decoded.signatures[0] == signatures[0]
    parsed = (await client.get_transaction(signatures[1], "jsonParsed", CONFIRMED)).value
    assert parsed is not None and parsed.slot > 0
    assert (await client.get_transaction(Signature.default(), "json", CONFIRMED)).value is None

    newest_first = list(reversed(signatures))
    history = await client.get_signatures_for_address(destination, commitment=CONFIRMED)
    assert [entry.signature for entry in history.value] == newest_first
    limited = await client.get_signatures_for_address(destination, limit=1, commitment=CONFIRMED)
    assert [entry.signature for entry in limited.value] == newest_first[:1]
    before = await client.get_signatures_for_address(
        destination, before=newest_first[0], commitment=CONFIRMED
    )
    assert [entry.signature for entry in before.value] == newest_first[1:]
    until = await client.get_signatures_for_address(
        destination, until=newest_first[2], commitment=CONFIRMED
    )
    assert [entry.signature for entry in until.value] == newest_first[:2]

    statuses = await client.get_signature_statuses([*signatures, Signature.default()])
    assert [s is None for s in statuses.value] == [False, False, False, True]
    assert all(s.slot > 0 for s in statuses.value[:3] if s is not None)
    searched = await client.get_signature_statuses(signatures, search_transaction_history=True)
    assert all(s is not None for s in searched.value)


async def test_simulate_transaction(client):
    payer = await funded(client)
    transaction, _ = await signed(
        client, [sol_transfer(payer, Keypair().pubkey(), SOL // 100)], payer
    )
    result = (await client.simulate_transaction(transaction, sig_verify=True)).value
    assert result.err is None and result.units_consumed == 150 and result.logs

    stale = VersionedTransaction(
        Message.new_with_blockhash(
            [sol_transfer(payer, Keypair().pubkey(), SOL // 100)], payer.pubkey(), Hash.new_unique()
        ),
        [payer],
    )
    assert "BlockhashNotFound" in str((await client.simulate_transaction(stale)).value.err)
    response = await client._provider.session.post(
        client._provider.endpoint_uri,
        json={
            "jsonrpc": "2.0",
            "id": 1,
            "method": "simulateTransaction",
            "params": [
                base64.b64encode(bytes(stale)).decode(),
                {"encoding": "base64", "replaceRecentBlockhash": True},
            ],
        },
    )
    body = response.json()["result"]["value"]
    assert body["err"] is None and body["replacementBlockhash"]["lastValidBlockHeight"] > 0

    failing, _ = await signed(client, [sol_transfer(payer, Keypair().pubkey(), 100 * SOL)], payer)
    failed = (await client.simulate_transaction(failing)).value
    assert failed.err is not None and any("insufficient" in line for line in failed.logs)


async def test_accounts_and_program_accounts(client):
    payer = await funded(client, 3 * SOL)
    other = await funded(client, 4 * SOL)
    info = (await client.get_account_info(payer.pubkey(), CONFIRMED)).value
    assert info is not None and info.lamports == 3 * SOL and info.owner == SYSTEM_PROGRAM
    many = (
        await client.get_multiple_accounts(
            [payer.pubkey(), other.pubkey(), Keypair().pubkey()], CONFIRMED
        )
    ).value
    assert [a.lamports if a else None for a in many] == [3 * SOL, 4 * SOL, None]
    assert (await client.get_minimum_balance_for_rent_exemption(0)).value == 890_880

    token_program = Pubkey.from_string("TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA")
    native_mint = Pubkey.from_string("So11111111111111111111111111111111111111112")
    mint = (await client.get_account_info(native_mint, CONFIRMED)).value
    assert mint is not None and mint.owner == token_program and len(mint.data) == 82
    found = (
        await client.get_program_accounts(
            token_program,
            CONFIRMED,
            encoding="base64",
            filters=[82, MemcmpOpts(offset=44, bytes="A")],  # decimals 9 (base58 "A" = 0x09)
        )
    ).value
    assert native_mint in [item.pubkey for item in found]
    none = (
        await client.get_program_accounts(
            token_program, CONFIRMED, encoding="base64", filters=[MemcmpOpts(offset=44, bytes="2")]
        )
    ).value
    assert native_mint not in [item.pubkey for item in none]
