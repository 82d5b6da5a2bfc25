"""SolanaRpc's reads of accounts: any account, a ticket's mint, who holds its token, a
balance.

Token-2022 layouts are `token2022`'s; everything here goes through
`rpc_failover.FailoverRpc`'s endpoints and retries.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from functools import partial
from typing import Final

from solders.pubkey import Pubkey

from chainworker.chain import calls, token2022, views
from chainworker.chain.calls import INVALID_PARAMS
from chainworker.chain.errors import BAD_RESPONSE, RPC, UNEXPECTED_ACCOUNT, ChainError
from chainworker.chain.rpc_failover import FailoverRpc
from chainworker.chain.token2022 import TOKEN_2022_PROGRAM_ID
from chainworker.chain.views import MintState

# Accounts one getMultipleAccounts may name (the public RPC's limit).
MAX_ACCOUNTS_PER_CALL: Final = 100


class AccountReads(FailoverRpc):
    async def get_account(self, address: Pubkey) -> views.AccountView | None:
        return await self._call(calls.account_info(address, self.commitment), views.account)

    async def get_accounts(self, addresses: Sequence[Pubkey]) -> list[views.AccountView | None]:
        """Many accounts, in order (None where none exists), 100 per call, the calls at once.

        Each call is one endpoint's answer at one slot; calls of more than 100 may come
        from different slots.
        """
        chunks = [
            list(addresses[start : start + MAX_ACCOUNTS_PER_CALL])
            for start in range(0, len(addresses), MAX_ACCOUNTS_PER_CALL)
        ]
        answers = await asyncio.gather(*(
            self._call(
                calls.multiple_accounts(chunk, self.commitment),
                partial(views.accounts, expected=len(chunk)),
            )
            for chunk in chunks
        ))
        return [view for answer in answers for view in answer]

    async def get_mint_state(self, mint: Pubkey) -> MintState | None:
        """The mint's supply, authorities and metadata; None if no account exists there.

        An account there that is not a Token-2022 mint: ChainError(kind="unexpected_account").
        """
        account = await self.get_account(mint)
        if account is None:
            return None
        if account.owner != TOKEN_2022_PROGRAM_ID:
            raise ChainError(UNEXPECTED_ACCOUNT, f"{mint} is owned by {account.owner}")
        try:
            return views.mint_state(mint, account)
        except ValueError as error:
            raise ChainError(UNEXPECTED_ACCOUNT, f"{mint} is not a mint: {error}") from None

    async def get_token_holder(self, mint: Pubkey) -> tuple[Pubkey, int] | None:
        """(owner wallet, amount) of the account holding the mint's token; None if none does
        (or no mint exists there)."""
        try:
            largest = await self._call(
                calls.token_largest_accounts(mint, self.commitment), views.largest_token_accounts
            )
        except ChainError as error:
            if error.kind == RPC and error.code == INVALID_PARAMS:
                return None  # "Invalid param: not a Token mint": nothing holds it
            raise
        for address, amount in largest:
            if amount <= 0:
                continue
            account = await self.get_account(address)
            if account is None:
                continue
            try:
                parsed = token2022.parse_token_account(account.data)
            except ValueError as error:
                raise ChainError(BAD_RESPONSE, f"token account {address}: {error}") from None
            return parsed.owner, parsed.amount
        return None

    async def get_balance(self, address: Pubkey) -> int:
        return await self._call(calls.balance(address, self.commitment), views.balance)
