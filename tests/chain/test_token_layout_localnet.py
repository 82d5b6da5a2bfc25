"""Token-2022 accounts as the localnet's real Token-2022 program writes them.

`token2022` reads the base mint and token account with solders and the extensions itself;
here both are checked against the node's own jsonParsed reading of the same accounts, and
the rent against the node's getMinimumBalanceForRentExemption.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
import pytest
from solders.account_decoder import UiAccountEncoding
from solders.commitment_config import CommitmentLevel
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from solders.rpc.config import RpcAccountInfoConfig
from solders.rpc.requests import GetAccountInfo, GetMinimumBalanceForRentExemption, batch_to_json

from chainworker.chain import group, nft, token2022
from chainworker.chain.rpc import SolanaRpc
from chainworker.localnet.process import LocalnetProcess

pytestmark = pytest.mark.timeout(60)


async def _parsed_info(http: httpx.AsyncClient, url: str, address: Pubkey) -> dict[str, Any]:
    config = RpcAccountInfoConfig(
        encoding=UiAccountEncoding.JsonParsed, commitment=CommitmentLevel.Confirmed
    )
    answer = (await http.post(url, content=GetAccountInfo(address, config, 1).to_json())).json()
    parsed: dict[str, Any] = answer["result"]["value"]["data"]["parsed"]["info"]
    return parsed


async def test_parsers_read_what_the_token_program_wrote(localnet: LocalnetProcess) -> None:
    authority, mint, holder = Keypair(), Keypair(), Keypair().pubkey()
    async with SolanaRpc([localnet.rpc_url]) as rpc, httpx.AsyncClient(timeout=5) as http:
        await rpc.request_airdrop(authority.pubkey(), 10 * 10**9)
        signed = nft.build_mint(
            authority=authority, mint=mint, holder=holder, name="Layout", symbol="TIX",
            uri="https://t.example/layout", ticket_id=uuid.uuid4(), event_id=uuid.uuid4(),
            memo="layout", recent_blockhash=(await rpc.latest_blockhash())[0],
        )
        await rpc.send_raw(signed.raw)
        await rpc.wait_for_confirmation(signed.signature, 20)

        mint_account = await rpc.get_account(mint.pubkey())
        token_address = nft.holder_token_account(holder, mint.pubkey())
        token_account = await rpc.get_account(token_address)
        assert mint_account is not None and token_account is not None
        assert mint_account.owner == token_account.owner == token2022.TOKEN_2022_PROGRAM_ID

        parsed_mint = token2022.parse_mint(mint_account.data)
        node_mint = await _parsed_info(http, localnet.rpc_url, mint.pubkey())
        base = parsed_mint.base
        assert (base.supply, base.decimals, base.is_initialized) == (
            int(node_mint["supply"]), node_mint["decimals"], node_mint["isInitialized"]
        )
        # kept until the ticket joins its event's group
        assert base.mint_authority == authority.pubkey()
        assert node_mint["mintAuthority"] == str(authority.pubkey())
        assert base.freeze_authority is None and node_mint["freezeAuthority"] is None
        assert parsed_mint.permanent_delegate == authority.pubkey()
        assert parsed_mint.metadata is not None and parsed_mint.metadata.name == "Layout"

        parsed_token = token2022.parse_token_account(token_account.data)
        node_token = await _parsed_info(http, localnet.rpc_url, token_address)
        assert (str(parsed_token.mint), str(parsed_token.owner), parsed_token.amount) == (
            node_token["mint"], node_token["owner"], int(node_token["tokenAmount"]["amount"])
        )
        assert (parsed_token.owner, parsed_token.amount) == (holder, 1)

        # Rent: the node's figure for every size that matters, and what the accounts hold.
        sizes = [0, token2022.BASE_MINT_SIZE, token2022.BASE_ACCOUNT_SIZE,
                 len(token_account.data), len(mint_account.data), 10_000]
        body = batch_to_json([GetMinimumBalanceForRentExemption(size, id=i)
                              for i, size in enumerate(sizes)])
        answers = sorted(json.loads((await http.post(localnet.rpc_url, content=body)).text),
                         key=lambda answer: answer["id"])
        assert [token2022.rent_exempt_lamports(size) for size in sizes] == [
            answer["result"] for answer in answers
        ]
        # funded already for the TokenGroupMember its verify adds
        assert mint_account.lamports == token2022.rent_exempt_lamports(
            len(mint_account.data) + group.TOKEN_GROUP_MEMBER_TLV
        )
        assert token_account.lamports == token2022.rent_exempt_lamports(len(token_account.data))
