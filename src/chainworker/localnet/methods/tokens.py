"""SPL Token reads: token balances, token accounts by owner or delegate, mint supply."""

from __future__ import annotations

from typing import Any

from solders.account import Account
from solders.pubkey import Pubkey

from chainworker.localnet import params as p
from chainworker.localnet.encoding import encode_account
from chainworker.localnet.errors import invalid_params
from chainworker.localnet.ledger import Commitment
from chainworker.localnet.methods.base import LARGEST_ACCOUNTS, MethodsBase
from chainworker.localnet.tokens import (
    TOKEN_PROGRAMS,
    is_mint,
    is_token_account,
    parse_mint,
    parse_token_account,
    ui_amount,
)


class TokenMethods(MethodsBase):
    def _token_account(self, key: Pubkey, level: Commitment) -> tuple[Account, int]:
        account = self.view.get_account(key, level)
        if account is None or not is_token_account(account):
            raise invalid_params("Invalid param: not a Token account")
        mint = self.view.get_account(parse_token_account(account.data).mint, level)
        if mint is None or not is_mint(mint):
            raise invalid_params("Invalid param: mint could not be unpacked")
        return account, parse_mint(mint.data).decimals

    def get_token_account_balance(self, params: list[Any]) -> Any:
        key = p.pubkey(p.required(params, 0, "pubkey"))
        level = self._read(p.config(params, 1))
        account, decimals = self._token_account(key, level)
        amount = parse_token_account(account.data).amount
        return self._context(ui_amount(amount, decimals), level)

    def _token_accounts_by(self, params: list[Any], owner_offset: int) -> Any:
        who = p.pubkey(p.required(params, 0, "pubkey"))
        selector = p.required(params, 1, "mint or programId")
        cfg = p.config(params, 2)
        level = self._read(cfg)
        encoding = self._encoding(cfg, "binary")
        if not isinstance(selector, dict) or len(selector) != 1:
            raise invalid_params("Invalid params: expected an object with mint or programId.")
        mint: Pubkey | None = None
        if "mint" in selector:
            mint = p.pubkey(selector["mint"])
            mint_account = self.view.get_account(mint, level)
            if mint_account is None or mint_account.owner not in TOKEN_PROGRAMS:
                raise invalid_params("Invalid param: could not find mint")
            programs = [mint_account.owner]
        elif "programId" in selector:
            program = p.pubkey(selector["programId"])
            if program not in TOKEN_PROGRAMS:
                raise invalid_params("Invalid param: unrecognized Token program id")
            programs = [program]
        else:
            raise invalid_params("Invalid params: expected mint or programId.")
        who_bytes = bytes(who)
        mints = self._mint_lookup(level)
        found = []
        for program in programs:
            for key, account in self.view.program_accounts(program, level):
                if not is_token_account(account):
                    continue
                data = account.data
                if owner_offset == 72:  # delegate is COption<Pubkey>
                    if data[72:76] != b"\x01\x00\x00\x00" or data[76:108] != who_bytes:
                        continue
                elif data[owner_offset : owner_offset + 32] != who_bytes:
                    continue
                if mint is not None and data[0:32] != bytes(mint):
                    continue
                found.append(
                    {
                        "account": encode_account(account, encoding, cfg.get("dataSlice"), mints),
                        "pubkey": str(key),
                    }
                )
        return self._context(found, level)

    def get_token_accounts_by_owner(self, params: list[Any]) -> Any:
        return self._token_accounts_by(params, 32)

    def get_token_accounts_by_delegate(self, params: list[Any]) -> Any:
        return self._token_accounts_by(params, 72)

    def get_token_supply(self, params: list[Any]) -> Any:
        key = p.pubkey(p.required(params, 0, "mint"))
        level = self._read(p.config(params, 1))
        account = self.view.get_account(key, level)
        if account is None or not is_mint(account):
            raise invalid_params("Invalid param: not a Token mint")
        mint = parse_mint(account.data)
        return self._context(ui_amount(mint.supply, mint.decimals), level)

    def get_token_largest_accounts(self, params: list[Any]) -> Any:
        key = p.pubkey(p.required(params, 0, "mint"))
        level = self._read(p.config(params, 1))
        account = self.view.get_account(key, level)
        if account is None or not is_mint(account):
            raise invalid_params("Invalid param: not a Token mint")
        decimals = parse_mint(account.data).decimals
        mint_bytes = bytes(key)
        holders = [
            (parse_token_account(held.data).amount, str(address))
            for address, held in self.view.program_accounts(account.owner, level)
            if is_token_account(held) and held.data[0:32] == mint_bytes
        ]
        holders.sort(key=lambda item: (-item[0], item[1]))
        return self._context(
            [
                {"address": address, **ui_amount(amount, decimals)}
                for amount, address in holders[:LARGEST_ACCOUNTS]
            ],
            level,
        )
