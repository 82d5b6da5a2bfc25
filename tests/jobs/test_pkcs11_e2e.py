"""A worker whose platform authority, fee payers and derivation seeds are keys inside a
SoftHSM2 token mints, transfers and burns on the localnet: every ticket's authorities are
the token's key, the token's payers pay, each mint and custodial wallet is the one the
seeds give (the token computed the HMAC), and the process never held a secret (the token
refuses to export them: tests/chain/test_signer.py, tests/chain/test_token_seed.py)."""

from __future__ import annotations

import secrets
from uuid import UUID

import asyncpg
from solders.pubkey import Pubkey

from chainworker.chain import keys
from chainworker.chain.rpc import SolanaRpc
from chainworker.chain.signer import Pkcs11Signer
from chainworker.chain.token_seed import import_seed
from chainworker.localnet.process import LocalnetProcess
from tests.helpers import Stack, wait_for
from tests.jobs.test_lifecycle_e2e import accepted_transfer, request_statuses, settled
from tests.plugins.softhsm import SoftHsm

LABEL = "platform-authority"
PAYERS = ("fee-payer-0", "fee-payer-1")
TOP_UP = 1_000_000_000


async def test_an_hsm_authority_mints_transfers_and_burns(
    stack: Stack, admin: asyncpg.Connection, localnet_faults: LocalnetProcess, softhsm: SoftHsm
) -> None:
    softhsm.generate_ed25519(LABEL)
    signer = Pkcs11Signer(softhsm.module, softhsm.token_label, LABEL, softhsm.pin)
    authority = signer.pubkey()
    signer.close()
    payers = [softhsm.generate_ed25519(label) for label in PAYERS]
    mint_seed, custodial_seed = secrets.token_bytes(32), secrets.token_bytes(32)
    import_seed(softhsm.module, softhsm.token_label, softhsm.pin, "mint-seed", mint_seed)
    import_seed(softhsm.module, softhsm.token_label, softhsm.pin, "custodial-seed",
                custodial_seed)
    stack.extra.update(softhsm.env(LABEL), FEE_PAYER_PKCS11_KEY_LABELS=",".join(PAYERS),
                       FEE_PAYER_TOP_UP_LAMPORTS=str(TOP_UP),
                       MINT_SEED_PKCS11_KEY_LABEL="mint-seed",
                       CUSTODIAL_SEED_PKCS11_KEY_LABEL="custodial-seed")
    seeded = stack.cli_json("seed", "--tickets", "3", "--users", "2")
    tenant, tickets, users = seeded["tenant_id"], seeded["ticket_ids"], seeded["user_ids"]
    worker = stack.worker()
    try:
        stack.cli("enqueue", "mint", "--tenant", tenant, "--ticket", "-", stdin="\n".join(tickets))
        await wait_for(lambda: settled(admin, tenant, 3), 60, "three mints")
        first = await admin.fetchrow(
            "SELECT id, user_id FROM tickets WHERE id = $1", UUID(tickets[0])
        )
        to_user = next(u for u in users if UUID(u) != first["user_id"])
        transfer_id = await accepted_transfer(
            admin, tenant, first["id"], first["user_id"], UUID(to_user)
        )
        stack.cli("enqueue", "transfer", "--tenant", tenant, "--transfer", str(transfer_id))
        stack.cli("enqueue", "burn", "--tenant", tenant, "--ticket", tickets[1],
                  "--reason", "refund")
        await wait_for(lambda: settled(admin, tenant, 5), 60, "a transfer and a burn")
    finally:
        worker.stop()
    assert await request_statuses(admin, tenant) == {"confirmed": 5}, worker.output()[-2000:]
    rows = await admin.fetch(
        "SELECT id, status, token_mint, user_id, wallet_address FROM tickets"
        " WHERE tenant_id = $1", UUID(tenant)
    )
    statuses = {str(row["id"]): row["status"] for row in rows}
    for row in rows:
        assert row["token_mint"] == str(keys.mint_keypair(mint_seed, UUID(tenant), row["id"])
                                        .pubkey())
        if row["status"] != "refunded":
            assert row["wallet_address"] == str(
                keys.custodial_wallet(custodial_seed, UUID(tenant), row["user_id"]))
    assert statuses == {tickets[0]: "transferred", tickets[1]: "refunded",
                        tickets[2]: "minted"}
    async with SolanaRpc([localnet_faults.rpc_url]) as rpc:
        for row in rows:
            if row["status"] == "refunded":
                continue
            state = await rpc.get_mint_state(Pubkey.from_string(row["token_mint"]))
            assert state is not None and state.metadata is not None
            assert state.permanent_delegate == authority
            assert state.metadata.update_authority == authority
            assert state.close_authority == authority
        # The token's payers were topped up by the token's authority, then paid: fees
        # came out of what they were given.
        balances = [await rpc.get_balance(payer) for payer in payers]
        assert all(0 < balance <= TOP_UP for balance in balances), balances
        assert sum(balances) < len(payers) * TOP_UP, balances
    assert softhsm.pin not in worker.output()  # the PIN is a secret: never logged
