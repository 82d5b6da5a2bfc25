"""A fee-payer pool: the worker funds its payers from the authority, with top-ups recorded
before they are sent, and then pays every mint, transfer and burn from a payer, with the
authority signing read-only (so no two transactions paid by different payers share a
write lock). Existing NFTs keep their permanent delegate: the authority."""

from __future__ import annotations

from uuid import UUID

import asyncpg
from solders.message import MessageV0
from solders.pubkey import Pubkey
from solders.transaction import VersionedTransaction

from chainworker.chain import keys
from chainworker.chain.rpc import SolanaRpc
from chainworker.config import load_settings
from chainworker.localnet.process import LocalnetProcess
from tests.helpers import Stack, wait_for
from tests.jobs.test_lifecycle_e2e import request_statuses, settled
from tests.pipeline.pipeline import signers_of

PAYERS = 3
MIN_LAMPORTS = 50_000_000
TOP_UP_LAMPORTS = 200_000_000


async def test_a_pool_pays_for_every_ticket_transaction_and_is_topped_up_on_record(
    stack: Stack, admin: asyncpg.Connection, localnet_faults: LocalnetProcess
) -> None:
    stack.extra.update({
        "FEE_PAYER_COUNT": str(PAYERS),
        "FEE_PAYER_MIN_LAMPORTS": str(MIN_LAMPORTS),
        "FEE_PAYER_TOP_UP_LAMPORTS": str(TOP_UP_LAMPORTS),
    })
    settings = load_settings(state_dir=stack.state_dir, fee_payer_count=PAYERS,
                             solana_rpc_urls=[localnet_faults.rpc_url])
    seeded = stack.cli_json("seed", "--tickets", "6", "--users", "8")
    tenant, tickets = seeded["tenant_id"], seeded["ticket_ids"]
    worker = stack.worker()
    try:
        stack.cli("enqueue", "mint", "--tenant", tenant, "--ticket", "-", stdin="\n".join(tickets))
        await wait_for(lambda: settled(admin, tenant, 6), 60, "six mints")
        stack.cli("enqueue", "burn", "--tenant", tenant, "--ticket", tickets[0],
                  "--reason", "refund")
        await wait_for(lambda: settled(admin, tenant, 7), 60, "a burn")
    finally:
        worker.stop()
    assert await request_statuses(admin, tenant) == {"confirmed": 7}, worker.output()[-3000:]

    # The payers the worker derived (the seed it generated in the state directory).
    authority = keys.load_authority(settings).pubkey()
    payers = {payer.pubkey() for payer in keys.load_fee_payers(settings, authority)}
    assert len(payers) == PAYERS

    top_ups = await admin.fetch(
        "SELECT payer, lamports, status, serialized_tx, tx_signature"
        " FROM chainworker_fee_payer_top_ups ORDER BY id"
    )
    assert {Pubkey.from_string(row["payer"]) for row in top_ups} == payers
    assert all(row["status"] == "confirmed" for row in top_ups), top_ups
    assert all(row["lamports"] == TOP_UP_LAMPORTS for row in top_ups)
    for row in top_ups:  # what was recorded is what was sent: the authority's signature
        sent = VersionedTransaction.from_bytes(row["serialized_tx"])
        assert str(sent.signatures[0]) == row["tx_signature"]
        assert sent.message.account_keys[0] == authority

    rpc = SolanaRpc.from_settings(settings)
    try:
        attempts = await admin.fetch(
            "SELECT tx_type, serialized_tx FROM pending_transactions"
            " WHERE tenant_id = $1 AND status = 'confirmed'",
            UUID(tenant),
        )
        paid_by = set()
        for attempt in attempts:
            message = VersionedTransaction.from_bytes(attempt["serialized_tx"]).message
            assert isinstance(message, MessageV0)
            payer = message.account_keys[0]
            assert payer in payers, attempt["tx_type"]
            writable, readonly = signers_of(message)
            assert writable[0] == payer
            assert authority not in writable
            assert authority in readonly
            paid_by.add(payer)
        assert len(paid_by) > 1  # spread over the pool, not all on one payer
        for ticket in tickets[1:]:
            mint = await admin.fetchval("SELECT token_mint FROM tickets WHERE id = $1",
                                        UUID(ticket))
            state = await rpc.get_mint_state(Pubkey.from_string(mint))
            assert state is not None and state.permanent_delegate == authority
            assert state.metadata is not None and state.metadata.update_authority == authority
        for payer in payers:  # topped up once, then spent on fees and rent
            balance = await rpc.get_balance(payer)
            assert 0 < balance < TOP_UP_LAMPORTS
    finally:
        await rpc.close()
