"""What a burn closes is decided from the chain's answer alone, and anything but the
expected accounts closes nothing: a close that fails would fail the burn with it."""

from __future__ import annotations

import struct
from uuid import uuid4

import pytest
from solders.hash import Hash
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from solders.token.state import TokenAccount, TokenAccountState

from chainworker.chain import nft, token2022
from chainworker.chain.views import AccountView
from chainworker.db.tickets import TicketRow
from chainworker.lifecycle.model import TxOp
from chainworker.pipeline.build import Closes, Draft, build_attempt
from chainworker.pipeline.context import PipelineContext
from chainworker.pipeline.prepare import closes_of
from tests.pipeline.test_context import make_context

TOKEN = token2022.TOKEN_2022_PROGRAM_ID
MINT_LAMPORTS, ACCOUNT_LAMPORTS = 4_496_160, 2_074_080


def _tlv(ext_type: int, value: bytes) -> bytes:
    return struct.pack("<HH", ext_type, len(value)) + value


def mint_data(close_authority: Pubkey | None, supply: int = 1) -> bytes:
    base = struct.pack("<I32sQBBI32s", 0, bytes(32), supply, 0, 1, 0, bytes(32))
    data = base.ljust(token2022.BASE_ACCOUNT_SIZE, b"\x00") + bytes([token2022.ACCOUNT_TYPE_MINT])
    if close_authority is not None:
        data += _tlv(token2022.EXT_MINT_CLOSE_AUTHORITY, bytes(close_authority))
    return data + _tlv(token2022.EXT_PERMANENT_DELEGATE, bytes(32))


def account_data(mint: Pubkey, owner: Pubkey, **fields: object) -> bytes:
    values: dict[str, object] = {
        "mint": mint, "owner": owner, "amount": 1, "delegate": None,
        "state": TokenAccountState.Initialized, "is_native": None, "delegated_amount": 0,
        **fields,
    }
    base = bytes(TokenAccount(**values))  # type: ignore[arg-type]
    return base + bytes([token2022.ACCOUNT_TYPE_ACCOUNT]) + _tlv(token2022.EXT_IMMUTABLE_OWNER, b"")


def ticket(ctx: PipelineContext) -> tuple[TicketRow, Pubkey, Pubkey, Pubkey]:
    """A minted ticket held in its user's custodial wallet: (row, mint, wallet, account)."""
    mint = Keypair().pubkey()
    row = TicketRow(uuid4(), uuid4(), uuid4(), uuid4(), "minted", str(mint), "A-1", "Show")
    assert row.user_id is not None
    wallet = ctx.keys.custodial_wallet(row.tenant_id, row.user_id)
    return row, mint, wallet, nft.holder_token_account(wallet, mint)


def test_a_custodial_burn_closes_the_mint_and_the_account_with_their_lamports() -> None:
    ctx = make_context()
    row, mint, wallet, account = ticket(ctx)
    authority = ctx.keys.authority.pubkey()
    accounts = {
        mint: AccountView(TOKEN, MINT_LAMPORTS, mint_data(authority)),
        account: AccountView(TOKEN, ACCOUNT_LAMPORTS, account_data(mint, wallet)),
    }
    closes = closes_of(ctx, row, wallet, accounts, ctx.keys.authority.pubkey())
    assert closes is not None and closes.holder is not None
    assert closes.holder.pubkey() == wallet
    assert (closes.mint_lamports, closes.holder_lamports, closes.lamports) == (
        MINT_LAMPORTS, ACCOUNT_LAMPORTS, MINT_LAMPORTS + ACCOUNT_LAMPORTS,
    )
    # An external holder (the NFT is elsewhere): the mint closes, the account is theirs.
    elsewhere = Keypair().pubkey()
    closes = closes_of(ctx, row, elsewhere, accounts, ctx.keys.authority.pubkey())
    assert closes == Closes(MINT_LAMPORTS)


@pytest.mark.parametrize(
    "mint_view",
    [
        None,  # no mint there
        "legacy",  # made without a close authority, before this release
        "other authority",
        "supply 0",  # burned already: this burn fails anyway, and a close would not help
        "foreign owner",
        "garbage",
        "short",
    ],
)
def test_anything_but_our_closable_mint_closes_nothing(mint_view: str | None) -> None:
    ctx = make_context()
    row, mint, wallet, account = ticket(ctx)
    authority = ctx.keys.authority.pubkey()
    views = {
        None: None,
        "legacy": AccountView(TOKEN, MINT_LAMPORTS, mint_data(None)),
        "other authority": AccountView(TOKEN, MINT_LAMPORTS, mint_data(Keypair().pubkey())),
        "supply 0": AccountView(TOKEN, MINT_LAMPORTS, mint_data(authority, supply=0)),
        "foreign owner": AccountView(Keypair().pubkey(), MINT_LAMPORTS, mint_data(authority)),
        "garbage": AccountView(TOKEN, MINT_LAMPORTS, b"\xff" * 300),
        "short": AccountView(TOKEN, MINT_LAMPORTS, b"\x01" * 40),
    }
    accounts = {
        mint: views[mint_view],
        account: AccountView(TOKEN, ACCOUNT_LAMPORTS, account_data(mint, wallet)),
    }
    assert closes_of(ctx, row, wallet, accounts, ctx.keys.authority.pubkey()) is None
    assert closes_of(ctx, row, wallet, {}, ctx.keys.authority.pubkey()) is None  # not read at all


@pytest.mark.parametrize(
    "change",
    ["missing", "empty", "frozen", "close authority", "other mint", "other owner",
     "foreign program", "garbage"],
)
def test_a_holder_account_not_as_expected_stays_open(change: str) -> None:
    ctx = make_context()
    row, mint, wallet, account = ticket(ctx)
    data = {
        "missing": b"",
        "empty": account_data(mint, wallet, amount=0),
        "frozen": account_data(mint, wallet, state=TokenAccountState.Frozen),
        "close authority": account_data(mint, wallet, close_authority=Keypair().pubkey()),
        "other mint": account_data(Keypair().pubkey(), wallet),
        "other owner": account_data(mint, Keypair().pubkey()),
        "foreign program": account_data(mint, wallet),
        "garbage": b"\x07" * 170,
    }[change]
    owner = Keypair().pubkey() if change == "foreign program" else TOKEN
    view = None if change == "missing" else AccountView(owner, ACCOUNT_LAMPORTS, data)
    accounts = {
        mint: AccountView(TOKEN, MINT_LAMPORTS, mint_data(ctx.keys.authority.pubkey())),
        account: view,
    }
    closes = closes_of(ctx, row, wallet, accounts, ctx.keys.authority.pubkey())
    assert closes == Closes(MINT_LAMPORTS)


def test_a_burn_that_closes_names_its_closes_and_its_holders_signature() -> None:
    ctx = make_context()
    row, mint, wallet, account = ticket(ctx)
    holder = ctx.keys.custodial_keypair(row.tenant_id, row.user_id)  # type: ignore[arg-type]
    payer = Keypair()
    draft = Draft(TxOp.BURN, row.tenant_id, row, wallet, None, memo="cw:x:1",
                  blockhash=Hash.default(), prefunded=0, payer=payer,
                  closes=Closes(MINT_LAMPORTS, holder, ACCOUNT_LAMPORTS))
    built = build_attempt(ctx, draft, nft.ComputeBudget(unit_limit=10_000))
    assert built.signatures == 3 and built.reclaimed == MINT_LAMPORTS + ACCOUNT_LAMPORTS
    assert built.rent == 0
    message = built.signed.transaction.message
    closes = [
        [message.account_keys[i] for i in ix.accounts]
        for ix in message.instructions
        if message.account_keys[ix.program_id_index] == TOKEN and bytes(ix.data) == bytes([9])
    ]
    # the holder's account, then the mint; every lamport to the payer
    assert closes == [
        [account, payer.pubkey(), wallet], [mint, payer.pubkey(), ctx.keys.authority.pubkey()],
    ]
    plain = build_attempt(ctx, Draft(TxOp.BURN, row.tenant_id, row, wallet, None, memo="cw:x:1",
                                     blockhash=Hash.default(), prefunded=0), None)
    assert (plain.signatures, plain.reclaimed) == (1, 0)
