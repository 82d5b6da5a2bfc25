"""A transfer or burn starts where the NFT is, not at the user's wallet of today.

Users register a new wallet after their ticket was minted: the NFT stays where it was
sent (their custodial address, or their old external wallet). The revoke, the refund and
the resale must move it from there, and the database must end up agreeing with the chain.
"""

from __future__ import annotations

from uuid import UUID

import asyncpg
from solders.keypair import Keypair
from solders.pubkey import Pubkey

from chainworker.chain.nft import holder_token_account
from chainworker.chain.rpc import SolanaRpc
from chainworker.localnet.process import LocalnetProcess
from tests.helpers import Stack, wait_for
from tests.jobs.test_lifecycle_e2e import custodial, request_statuses, settled


async def register(admin: asyncpg.Connection, tenant: str, user: str, wallet: Pubkey) -> None:
    """The user registers (or replaces) an external wallet, as POST /v1/wallets does."""
    await admin.execute(
        """INSERT INTO wallets (tenant_id, user_id, address) VALUES ($1, $2, $3)
           ON CONFLICT (tenant_id, user_id) DO UPDATE SET address = EXCLUDED.address""",
        UUID(tenant), UUID(user), str(wallet),
    )


async def test_new_wallets_after_the_mint_do_not_strand_the_nft(
    stack: Stack, admin: asyncpg.Connection, localnet_faults: LocalnetProcess
) -> None:
    seeded = stack.cli_json("seed", "--tickets", "4", "--users", "6")
    tenant, tickets, users = seeded["tenant_id"], seeded["ticket_ids"], seeded["user_ids"]
    holders = {
        row["id"]: str(row["user_id"])
        for row in await admin.fetch(
            "SELECT id, user_id FROM tickets WHERE tenant_id = $1", UUID(tenant)
        )
    }
    owner = [holders[UUID(t)] for t in tickets]
    recipients = [u for u in users if u not in owner][:2]
    # Tickets 0 and 2 sit in custodial wallets, 1 and 3 in external ones.
    first_wallets = {owner[1]: Keypair().pubkey(), owner[3]: Keypair().pubkey()}
    for user, wallet in first_wallets.items():
        await register(admin, tenant, user, wallet)

    worker = stack.worker()
    try:
        stack.cli("enqueue", "mint", "--tenant", tenant, "--ticket", "-", stdin="\n".join(tickets))
        await wait_for(lambda: settled(admin, tenant, 4), 60, "four mints")
        assert await request_statuses(admin, tenant) == {"confirmed": 4}
        minted_to = {
            str(row["id"]): row["wallet_address"]
            for row in await admin.fetch(
                "SELECT id, wallet_address FROM tickets WHERE tenant_id = $1", UUID(tenant)
            )
        }
        assert minted_to[tickets[0]] == str(custodial(stack, tenant, owner[0]))
        assert minted_to[tickets[1]] == str(first_wallets[owner[1]])

        # Every holder registers a new wallet after the mint.
        for user in owner:
            await register(admin, tenant, user, Keypair().pubkey())

        transfers = [
            await admin.fetchval(
                """INSERT INTO ticket_transfers (tenant_id, ticket_id, from_user_id, to_user_id,
                                                 status, accepted_at)
                   VALUES ($1, $2, $3, $4, 'accepted', now()) RETURNING id""",
                UUID(tenant), UUID(tickets[i]), UUID(owner[i]), UUID(recipients[j]),
            )
            for j, i in enumerate((2, 3))
        ]
        stack.cli("enqueue", "burn", "--tenant", tenant, "--ticket", tickets[0],
                  "--reason", "revoke")
        stack.cli("enqueue", "burn", "--tenant", tenant, "--ticket", tickets[1],
                  "--reason", "refund")
        stack.cli("enqueue", "transfer", "--tenant", tenant, "--transfer", "-",
                  stdin="\n".join(str(t) for t in transfers))
        await wait_for(lambda: settled(admin, tenant, 8), 60, "two burns and two transfers")
    finally:
        worker.stop()
    assert await request_statuses(admin, tenant) == {"confirmed": 8}, worker.output()[-3000:]

    rows = {
        str(row["id"]): row
        for row in await admin.fetch(
            """SELECT id, status, user_id, wallet_address, token_mint, transfer_count
                 FROM tickets WHERE tenant_id = $1""",
            UUID(tenant),
        )
    }
    assert rows[tickets[0]]["status"] == "revoked"
    assert rows[tickets[1]]["status"] == "refunded"
    async with SolanaRpc([localnet_faults.rpc_url]) as rpc:
        # Both burns closed their mints; the custodial holder's token account was closed
        # with its mint, the external holder's is left to them, empty.
        for burned, wallet, closed in (
            (tickets[0], custodial(stack, tenant, owner[0]), True),
            (tickets[1], first_wallets[owner[1]], False),
        ):
            mint = Pubkey.from_string(rows[burned]["token_mint"])
            assert await rpc.get_account(mint) is None
            account = await rpc.get_account(holder_token_account(wallet, mint))
            assert (account is None) == closed
        for ticket, recipient in zip(tickets[2:], recipients, strict=True):
            row = rows[ticket]
            destination = custodial(stack, tenant, recipient)  # no wallet registered
            chain = await rpc.get_token_holder(Pubkey.from_string(row["token_mint"]))
            assert chain == (destination, 1)
            assert str(row["user_id"]) == recipient
            assert row["wallet_address"] == str(destination)
            assert row["transfer_count"] == 1
            assert row["status"] == "transferred"
