"""SPL Token and Token-2022 mints and transfers built with solana-py's token helpers."""

from __future__ import annotations

import pytest
from solana.rpc.async_api import AsyncClient
from solana.rpc.commitment import Commitment
from solana.rpc.models import TokenAccountOpts
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from solders.system_program import CreateAccountParams, create_account
from spl.token.constants import TOKEN_2022_PROGRAM_ID, TOKEN_PROGRAM_ID
from spl.token.instructions import (
    create_idempotent_associated_token_account,
    get_associated_token_address,
    initialize_mint2,
    mint_to_checked,
    transfer_checked,
)
from spl.token.models import InitializeMint2Params, MintToCheckedParams, TransferCheckedParams

from tests.localnet.helpers import funded, send, wait_status

CONFIRMED = Commitment("confirmed")
MINT_SIZE = 82


@pytest.fixture
async def client(localnet):
    async with AsyncClient(localnet.rpc_url, commitment=CONFIRMED) as rpc:
        yield rpc


@pytest.mark.parametrize("program", [TOKEN_PROGRAM_ID, TOKEN_2022_PROGRAM_ID])
async def test_mint_and_transfer(client, program: Pubkey):
    payer = await funded(client)
    mint = Keypair()
    holder = Keypair().pubkey()
    receiver = Keypair().pubkey()
    rent = (await client.get_minimum_balance_for_rent_exemption(MINT_SIZE)).value
    holder_ata = get_associated_token_address(holder, mint.pubkey(), program)
    receiver_ata = get_associated_token_address(receiver, mint.pubkey(), program)
    minted = await send(
        client,
        [
            create_account(
                CreateAccountParams(
                    from_pubkey=payer.pubkey(),
                    to_pubkey=mint.pubkey(),
                    lamports=rent,
                    space=MINT_SIZE,
                    owner=program,
                )
            ),
            initialize_mint2(
                InitializeMint2Params(
                    decimals=2,
                    program_id=program,
                    mint=mint.pubkey(),
                    mint_authority=payer.pubkey(),
                )
            ),
            create_idempotent_associated_token_account(
                payer.pubkey(), holder, mint.pubkey(), program
            ),
            mint_to_checked(
                MintToCheckedParams(
                    program_id=program,
                    mint=mint.pubkey(),
                    dest=holder_ata,
                    mint_authority=payer.pubkey(),
                    amount=1050,
                    decimals=2,
                )
            ),
        ],
        payer,
        mint,
    )
    assert (await wait_status(client, minted, "confirmed")).err is None

    balance = (await client.get_token_account_balance(holder_ata, CONFIRMED)).value
    assert (balance.amount, balance.decimals, balance.ui_amount_string) == ("1050", 2, "10.5")
    supply = (await client.get_token_supply(mint.pubkey(), CONFIRMED)).value
    assert supply.amount == "1050"

    holder_kp = Keypair()  # the holder must sign the transfer: use a signing owner instead
    signer_ata = get_associated_token_address(holder_kp.pubkey(), mint.pubkey(), program)
    moved = await send(
        client,
        [
            create_idempotent_associated_token_account(
                payer.pubkey(), holder_kp.pubkey(), mint.pubkey(), program
            ),
            create_idempotent_associated_token_account(
                payer.pubkey(), receiver, mint.pubkey(), program
            ),
            mint_to_checked(
                MintToCheckedParams(
                    program_id=program,
                    mint=mint.pubkey(),
                    dest=signer_ata,
                    mint_authority=payer.pubkey(),
                    amount=500,
                    decimals=2,
                )
            ),
            transfer_checked(
                TransferCheckedParams(
                    program_id=program,
                    source=signer_ata,
                    mint=mint.pubkey(),
                    dest=receiver_ata,
                    owner=holder_kp.pubkey(),
                    amount=200,
                    decimals=2,
                )
            ),
        ],
        payer,
        holder_kp,
    )
    assert (await wait_status(client, moved, "confirmed")).err is None
    received = (await client.get_token_account_balance(receiver_ata, CONFIRMED)).value
    assert received.amount == "200"
    left = (await client.get_token_account_balance(signer_ata, CONFIRMED)).value
    assert left.amount == "300"

    by_owner = await client.get_token_accounts_by_owner(
        receiver, TokenAccountOpts(mint=mint.pubkey()), CONFIRMED
    )
    assert [item.pubkey for item in by_owner.value] == [receiver_ata]
    by_program = await client.get_token_accounts_by_owner(
        holder, TokenAccountOpts(program_id=program), CONFIRMED
    )
    assert [item.pubkey for item in by_program.value] == [holder_ata]
    parsed = await client.get_token_accounts_by_owner_json_parsed(
        receiver, TokenAccountOpts(mint=mint.pubkey()), CONFIRMED
    )
    info = parsed.value[0].account.data.parsed["info"]
    assert info["tokenAmount"]["amount"] == "200" and info["owner"] == str(receiver)
    parsed_mint = (await client.get_account_info_json_parsed(mint.pubkey(), CONFIRMED)).value
    assert parsed_mint is not None and parsed_mint.data.parsed["info"]["supply"] == "1550"

    largest = (await client.get_token_largest_accounts(mint.pubkey(), CONFIRMED)).value
    assert [(item.address, item.amount.amount) for item in largest] == [
        (holder_ata, "1050"),
        (signer_ata, "300"),
        (receiver_ata, "200"),
    ]
