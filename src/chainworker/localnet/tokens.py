"""SPL Token / Token-2022 account layouts, read-only, as the RPC's jsonParsed shows them."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from solders.account import Account
from solders.pubkey import Pubkey

from chainworker.localnet.genesis import TOKEN_2022_PROGRAM, TOKEN_PROGRAM

TOKEN_PROGRAMS = (TOKEN_PROGRAM, TOKEN_2022_PROGRAM)
TOKEN_ACCOUNT_SIZE = 165
MINT_SIZE = 82
ACCOUNT_TYPE_OFFSET = 165
_ACCOUNT_TYPE_MINT = 1
_ACCOUNT_TYPE_ACCOUNT = 2
_STATES = {0: "uninitialized", 1: "initialized", 2: "frozen"}


@dataclass(frozen=True)
class TokenAccount:
    mint: Pubkey
    owner: Pubkey
    amount: int
    delegate: Pubkey | None
    state: str
    is_native: int | None
    delegated_amount: int
    close_authority: Pubkey | None


@dataclass(frozen=True)
class Mint:
    mint_authority: Pubkey | None
    supply: int
    decimals: int
    is_initialized: bool
    freeze_authority: Pubkey | None


def _option_key(data: bytes, offset: int) -> Pubkey | None:
    if data[offset : offset + 4] == b"\x01\x00\x00\x00":
        return Pubkey.from_bytes(data[offset + 4 : offset + 36])
    return None


def is_token_account(account: Account) -> bool:
    data = account.data
    if account.owner == TOKEN_PROGRAM:
        return len(data) == TOKEN_ACCOUNT_SIZE
    if account.owner == TOKEN_2022_PROGRAM:
        return len(data) == TOKEN_ACCOUNT_SIZE or (
            len(data) > TOKEN_ACCOUNT_SIZE and data[ACCOUNT_TYPE_OFFSET] == _ACCOUNT_TYPE_ACCOUNT
        )
    return False


def is_mint(account: Account) -> bool:
    data = account.data
    if account.owner == TOKEN_PROGRAM:
        return len(data) == MINT_SIZE
    if account.owner == TOKEN_2022_PROGRAM:
        return len(data) == MINT_SIZE or (
            len(data) > TOKEN_ACCOUNT_SIZE and data[ACCOUNT_TYPE_OFFSET] == _ACCOUNT_TYPE_MINT
        )
    return False


def parse_token_account(data: bytes) -> TokenAccount:
    is_native = (
        int.from_bytes(data[113:121], "little") if data[109:113] == b"\x01\x00\x00\x00" else None
    )
    return TokenAccount(
        mint=Pubkey.from_bytes(data[0:32]),
        owner=Pubkey.from_bytes(data[32:64]),
        amount=int.from_bytes(data[64:72], "little"),
        delegate=_option_key(data, 72),
        state=_STATES.get(data[108], "uninitialized"),
        is_native=is_native,
        delegated_amount=int.from_bytes(data[121:129], "little"),
        close_authority=_option_key(data, 129),
    )


def parse_mint(data: bytes) -> Mint:
    return Mint(
        mint_authority=_option_key(data, 0),
        supply=int.from_bytes(data[36:44], "little"),
        decimals=data[44],
        is_initialized=bool(data[45]),
        freeze_authority=_option_key(data, 46),
    )


def ui_amount(amount: int, decimals: int) -> dict[str, Any]:
    value = Decimal(amount).scaleb(-decimals)
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return {
        "amount": str(amount),
        "decimals": decimals,
        "uiAmount": float(value),
        "uiAmountString": text,
    }


def program_name(owner: Pubkey) -> str:
    return "spl-token-2022" if owner == TOKEN_2022_PROGRAM else "spl-token"


def parsed_token_account(account: Account, decimals: int) -> dict[str, Any]:
    token = parse_token_account(account.data)
    info: dict[str, Any] = {
        "isNative": token.is_native is not None,
        "mint": str(token.mint),
        "owner": str(token.owner),
        "state": token.state,
        "tokenAmount": ui_amount(token.amount, decimals),
    }
    if token.delegate is not None:
        info["delegate"] = str(token.delegate)
        info["delegatedAmount"] = ui_amount(token.delegated_amount, decimals)
    if token.is_native is not None:
        info["rentExemptReserve"] = ui_amount(token.is_native, decimals)
    if token.close_authority is not None:
        info["closeAuthority"] = str(token.close_authority)
    return {"info": info, "type": "account"}


def parsed_mint(account: Account) -> dict[str, Any]:
    mint = parse_mint(account.data)
    freeze = None if mint.freeze_authority is None else str(mint.freeze_authority)
    return {
        "info": {
            "decimals": mint.decimals,
            "freezeAuthority": freeze,
            "isInitialized": mint.is_initialized,
            "mintAuthority": None if mint.mint_authority is None else str(mint.mint_authority),
            "supply": str(mint.supply),
        },
        "type": "mint",
    }
