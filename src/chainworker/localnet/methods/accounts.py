"""Account reads: balances, account data, program scans, and rent exemption."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from solders.account import Account

from chainworker.localnet import params as p
from chainworker.localnet.encoding import encode_account
from chainworker.localnet.errors import invalid_params
from chainworker.localnet.methods.base import MethodsBase

MAX_MULTIPLE_ACCOUNTS = 100
MAX_FILTERS = 4


class AccountMethods(MethodsBase):
    def get_balance(self, params: list[Any]) -> Any:
        key = p.pubkey(p.required(params, 0, "pubkey"))
        level = self._read(p.config(params, 1))
        account = self.view.get_account(key, level)
        return self._context(0 if account is None else account.lamports, level)

    def get_account_info(self, params: list[Any]) -> Any:
        key = p.pubkey(p.required(params, 0, "pubkey"))
        cfg = p.config(params, 1)
        level = self._read(cfg)
        encoding = self._encoding(cfg, "binary")
        account = self.view.get_account(key, level)
        value = encode_account(account, encoding, cfg.get("dataSlice"), self._mint_lookup(level))
        return self._context(value, level)

    def get_multiple_accounts(self, params: list[Any]) -> Any:
        keys = p.required(params, 0, "pubkeys")
        if not isinstance(keys, list):
            raise invalid_params("Invalid params: invalid type: expected a sequence of pubkeys.")
        if len(keys) > MAX_MULTIPLE_ACCOUNTS:
            raise invalid_params(f"Too many inputs provided; max {MAX_MULTIPLE_ACCOUNTS}")
        parsed = [p.pubkey(key) for key in keys]
        cfg = p.config(params, 1)
        level = self._read(cfg)
        encoding = self._encoding(cfg, "base64")
        mints = self._mint_lookup(level)
        data_slice = cfg.get("dataSlice")
        return self._context(
            [
                encode_account(self.view.get_account(key, level), encoding, data_slice, mints)
                for key in parsed
            ],
            level,
        )

    def _filters(self, raw: Any) -> list[Callable[[Account], bool]]:
        if raw is None:
            return []
        if not isinstance(raw, list):
            raise invalid_params("Invalid params: filters must be a sequence.")
        if len(raw) > MAX_FILTERS:
            raise invalid_params(f"Too many filters provided; max {MAX_FILTERS}")
        checks: list[Callable[[Account], bool]] = []
        for item in raw:
            if isinstance(item, dict) and "dataSize" in item:
                checks.append(_data_size(p.integer(item["dataSize"], "dataSize")))
            elif isinstance(item, dict) and isinstance(item.get("memcmp"), dict):
                memcmp = item["memcmp"]
                offset = p.integer(memcmp.get("offset"), "memcmp offset")
                encoding = memcmp.get("encoding", "base58")
                wanted = p.decode_bytes(memcmp.get("bytes"), encoding, 175, "memcmp bytes")
                checks.append(_memcmp(offset, wanted))
            else:
                raise invalid_params(f"Invalid params: unsupported filter {item!r}.")
        return checks

    def get_program_accounts(self, params: list[Any]) -> Any:
        program = p.pubkey(p.required(params, 0, "program id"))
        cfg = p.config(params, 1)
        level = self._read(cfg)
        encoding = self._encoding(cfg, "binary")
        checks = self._filters(cfg.get("filters"))
        mints = self._mint_lookup(level)
        data_slice = cfg.get("dataSlice")
        found = [
            {"account": encode_account(account, encoding, data_slice, mints), "pubkey": str(key)}
            for key, account in self.view.program_accounts(program, level)
            if all(check(account) for check in checks)
        ]
        if p.boolean(cfg, "withContext"):
            return self._context(found, level)
        return found

    def get_minimum_balance(self, params: list[Any]) -> Any:
        size = p.integer(p.required(params, 0, "size"), "data length")
        if size > 10 * 1024 * 1024:
            raise invalid_params("Invalid params: data length too large.")
        return self.ledger.svm.minimum_balance_for_rent_exemption(size)


def _data_size(size: int) -> Callable[[Account], bool]:
    return lambda account: len(account.data) == size


def _memcmp(offset: int, wanted: bytes) -> Callable[[Account], bool]:
    return lambda account: account.data[offset : offset + len(wanted)] == wanted
