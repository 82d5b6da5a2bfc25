"""The NFT builders and account parsers against the real Token-2022 program in LiteSVM."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import pytest
from solders.hash import Hash
from solders.keypair import Keypair
from solders.litesvm import LiteSVM
from solders.pubkey import Pubkey
from solders.transaction import VersionedTransaction
from solders.transaction_metadata import FailedTransactionMetadata, TransactionMetadata

from chainworker.chain import group, nft, token2022
from chainworker.chain.nft import ComputeBudget, holder_token_account


@dataclass
class Minted:
    mint: Keypair
    holder: Pubkey
    ticket_id: uuid.UUID
    event_id: uuid.UUID


@pytest.fixture(scope="module")
def svm() -> LiteSVM:
    return LiteSVM()


@pytest.fixture(scope="module")
def authority(svm: LiteSVM) -> Keypair:
    keypair = Keypair()
    svm.airdrop(keypair.pubkey(), 100 * 10**9)
    return keypair


def send(svm: LiteSVM, tx: VersionedTransaction) -> TransactionMetadata:
    result = svm.send_transaction(tx)
    assert isinstance(result, TransactionMetadata), f"{result.err()} {result.meta().logs()}"
    return result


def send_failing(svm: LiteSVM, tx: VersionedTransaction) -> str:
    result = svm.send_transaction(tx)
    assert isinstance(result, FailedTransactionMetadata), "the transaction unexpectedly landed"
    return f"{result.err()} {' '.join(result.meta().logs())}"


def mint_one(svm: LiteSVM, authority: Keypair, **overrides: object) -> Minted:
    minted = Minted(Keypair(), Keypair().pubkey(), uuid.uuid4(), uuid.uuid4())
    args: dict[str, Any] = {
        "authority": authority,
        "mint": minted.mint,
        "holder": minted.holder,
        "name": "Concert #1",
        "symbol": "TIX",
        "uri": "https://tickets.example/m/1.json",
        "ticket_id": minted.ticket_id,
        "event_id": minted.event_id,
        "memo": "attempt-1",
        "recent_blockhash": svm.latest_blockhash(),
    }
    args.update(overrides)
    send(svm, nft.build_mint(**args).transaction)
    return minted


def read_mint(svm: LiteSVM, mint: Pubkey) -> token2022.MintAccount:
    account = svm.get_account(mint)
    assert account is not None
    assert account.owner == token2022.TOKEN_2022_PROGRAM_ID
    return token2022.parse_mint(bytes(account.data))


def balance(svm: LiteSVM, holder: Pubkey, mint: Pubkey) -> int:
    account = svm.get_account(holder_token_account(holder, mint))
    assert account is not None
    parsed = token2022.parse_token_account(bytes(account.data))
    assert parsed.owner == holder and parsed.mint == mint
    return parsed.amount


def test_mint_creates_a_one_of_one_with_metadata(svm: LiteSVM, authority: Keypair) -> None:
    minted = mint_one(svm, authority)
    mint = minted.mint.pubkey()
    state = read_mint(svm, mint)

    assert state.base.supply == 1
    assert state.base.decimals == 0
    # kept for the verify transaction, which removes it (tests/chain/test_group_svm.py)
    assert state.base.mint_authority == authority.pubkey()
    assert state.base.freeze_authority is None
    assert state.permanent_delegate == authority.pubkey()
    assert state.close_authority == authority.pubkey()
    assert token2022.EXT_MINT_CLOSE_AUTHORITY in state.extension_types
    assert state.metadata_pointer == token2022.MetadataPointer(authority.pubkey(), mint)
    assert state.metadata is not None
    assert state.metadata.mint == mint
    assert state.metadata.update_authority == authority.pubkey()
    assert (state.metadata.name, state.metadata.symbol, state.metadata.uri) == (
        "Concert #1",
        "TIX",
        "https://tickets.example/m/1.json",
    )
    assert state.metadata.field("ticket_id") == str(minted.ticket_id)
    assert state.metadata.field("event_id") == str(minted.event_id)
    assert state.metadata.field("absent") is None
    assert balance(svm, minted.holder, mint) == 1
    groups = group.parse_group_extensions(bytes(svm.get_account(mint).data))
    assert groups.member_pointer == group.GroupMemberPointer(authority.pubkey(), mint)
    assert groups.member is None and groups.group is None


def test_a_mint_of_the_old_layout_has_no_member_pointer_and_no_mint_authority(
    svm: LiteSVM, authority: Keypair
) -> None:
    minted = mint_one(svm, authority, group_member=False)
    state = read_mint(svm, minted.mint.pubkey())
    assert state.base.supply == 1 and state.base.mint_authority is None
    assert group.EXT_GROUP_MEMBER_POINTER not in state.extension_types
    account = svm.get_account(minted.mint.pubkey())
    fields = [("ticket_id", str(minted.ticket_id)), ("event_id", str(minted.event_id))]
    size = token2022.final_mint_size("Concert #1", "TIX", "https://tickets.example/m/1.json",
                                     fields)
    assert len(account.data) == size and account.lamports == token2022.rent_exempt_lamports(size)


def test_mint_account_is_funded_exactly_for_its_final_size(
    svm: LiteSVM, authority: Keypair
) -> None:
    minted = mint_one(svm, authority, name="Ünïcode name", symbol="ÜT")
    account = svm.get_account(minted.mint.pubkey())
    assert account is not None
    fields = [("ticket_id", str(minted.ticket_id)), ("event_id", str(minted.event_id))]
    size = token2022.final_mint_size(
        "Ünïcode name", "ÜT", "https://tickets.example/m/1.json", fields
    )
    # Now its metadata and its member pointer; funded already for the member entry to come
    # (tests/chain/test_group_svm.py shows it exactly rent-exempt once a member).
    assert len(account.data) == size + group.GROUP_MEMBER_POINTER_TLV
    final = size + group.MEMBER_EXTENSIONS_SIZE
    assert account.lamports == token2022.rent_exempt_lamports(final)
    assert account.lamports == svm.minimum_balance_for_rent_exemption(final)


def test_second_mint_for_the_same_key_fails_already_in_use(
    svm: LiteSVM, authority: Keypair
) -> None:
    minted = mint_one(svm, authority)
    svm.expire_blockhash()
    again = nft.build_mint(
        authority=authority,
        mint=minted.mint,
        holder=Keypair().pubkey(),
        name="Concert #1",
        symbol="TIX",
        uri="",
        ticket_id=minted.ticket_id,
        event_id=minted.event_id,
        memo="attempt-2",
        recent_blockhash=svm.latest_blockhash(),
    )
    assert "already in use" in send_failing(svm, again.transaction)
    assert read_mint(svm, minted.mint.pubkey()).base.supply == 1


def test_transfer_by_delegate_moves_the_token_and_replay_fails(
    svm: LiteSVM, authority: Keypair
) -> None:
    minted = mint_one(svm, authority)
    mint = minted.mint.pubkey()
    buyer = Keypair().pubkey()
    transfer = nft.build_transfer(
        authority=authority,
        mint=mint,
        from_holder=minted.holder,
        to_holder=buyer,
        memo="transfer-1",
        recent_blockhash=svm.latest_blockhash(),
        compute=ComputeBudget(unit_limit=60_000, unit_price_microlamports=10),
    )
    send(svm, transfer.transaction)
    assert balance(svm, buyer, mint) == 1
    assert balance(svm, minted.holder, mint) == 0

    svm.expire_blockhash()
    replay = nft.build_transfer(
        authority=authority,
        mint=mint,
        from_holder=minted.holder,
        to_holder=buyer,
        memo="transfer-2",
        recent_blockhash=svm.latest_blockhash(),
    )
    assert "insufficient funds" in send_failing(svm, replay.transaction).lower()
    assert balance(svm, buyer, mint) == 1


def test_burn_by_delegate_destroys_the_token_and_replay_fails(
    svm: LiteSVM, authority: Keypair
) -> None:
    minted = mint_one(svm, authority)
    mint = minted.mint.pubkey()
    burn = nft.build_burn(
        authority=authority,
        mint=mint,
        holder=minted.holder,
        memo="burn-1",
        recent_blockhash=svm.latest_blockhash(),
    )
    send(svm, burn.transaction)
    assert read_mint(svm, mint).base.supply == 0
    assert balance(svm, minted.holder, mint) == 0

    svm.expire_blockhash()
    replay = nft.build_burn(
        authority=authority,
        mint=mint,
        holder=minted.holder,
        memo="burn-2",
        recent_blockhash=svm.latest_blockhash(),
    )
    assert "insufficient funds" in send_failing(svm, replay.transaction).lower()


def longest_mint(svm: LiteSVM, authority: Keypair, mint: Keypair, uri_bytes: int) -> nft.SignedTx:
    return nft.build_mint(
        authority=authority,
        mint=mint,
        holder=Keypair().pubkey(),
        name="N" * nft.NAME_MAX_BYTES,
        symbol="S" * nft.SYMBOL_MAX_BYTES,
        uri="u" * uri_bytes,
        ticket_id=uuid.uuid4(),
        event_id=uuid.uuid4(),
        memo="m" * nft.MEMO_MAX_BYTES,
        recent_blockhash=svm.latest_blockhash(),
        compute=ComputeBudget(unit_limit=nft.MAX_COMPUTE_UNITS, unit_price_microlamports=10**9),
    )


def test_largest_allowed_mint_fits_one_packet_and_lands(
    svm: LiteSVM, authority: Keypair, monkeypatch: pytest.MonkeyPatch
) -> None:
    mint = Keypair()
    signed = longest_mint(svm, authority, mint, nft.URI_MAX_BYTES)
    # The bound is exact: the longest mint fills the packet, and one byte more of URI would
    # not fit.
    assert len(signed.raw) == nft.PACKET_DATA_SIZE
    with monkeypatch.context() as patch:
        patch.setattr(nft, "URI_MAX_BYTES", nft.URI_MAX_BYTES + 1)
        with pytest.raises(nft.TooLarge, match="1233 bytes"):
            longest_mint(svm, authority, Keypair(), nft.URI_MAX_BYTES)
    assert signed.raw == bytes(signed.transaction)
    assert signed.signature == signed.transaction.signatures[0]
    send(svm, signed.transaction)
    metadata = read_mint(svm, mint.pubkey()).metadata
    assert metadata is not None and metadata.uri == "u" * nft.URI_MAX_BYTES


def test_compute_budget_instructions_come_first(svm: LiteSVM, authority: Keypair) -> None:
    signed = nft.build_burn(
        authority=authority,
        mint=Keypair().pubkey(),
        holder=Keypair().pubkey(),
        memo="x",
        recent_blockhash=svm.latest_blockhash(),
        compute=ComputeBudget(unit_limit=5_000, unit_price_microlamports=7),
    )
    message = signed.transaction.message
    programs = [message.account_keys[ix.program_id_index] for ix in message.instructions]
    budget = Pubkey.from_string("ComputeBudget111111111111111111111111111111")
    assert programs[:2] == [budget, budget]
    assert programs[-1] == token2022.MEMO_PROGRAM_ID
    assert message.account_keys[0] == authority.pubkey()  # fee payer


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("name", "N" * (nft.NAME_MAX_BYTES + 1), "name is 33 bytes"),
        ("name", "", "name must not be empty"),
        ("symbol", "S" * (nft.SYMBOL_MAX_BYTES + 1), "symbol is"),
        ("uri", "u" * (nft.URI_MAX_BYTES + 1), "uri is"),
        ("uri", "é" * (nft.URI_MAX_BYTES // 2 + 1), "uri is"),
        ("memo", "m" * (nft.MEMO_MAX_BYTES + 1), "memo is"),
        ("memo", "", "memo must not be empty"),
        ("compute", ComputeBudget(unit_limit=nft.MAX_COMPUTE_UNITS + 1), "compute unit limit"),
    ],
)
def test_oversize_or_empty_input_is_rejected(
    svm: LiteSVM, authority: Keypair, field: str, value: object, message: str
) -> None:
    args: dict[str, Any] = {
        "authority": authority,
        "mint": Keypair(),
        "holder": Keypair().pubkey(),
        "name": "ok",
        "symbol": "OK",
        "uri": "",
        "ticket_id": uuid.uuid4(),
        "event_id": uuid.uuid4(),
        "memo": "attempt",
        "recent_blockhash": svm.latest_blockhash(),
    }
    args[field] = value
    with pytest.raises(ValueError, match=message):
        nft.build_mint(**args)


def test_transfer_to_the_current_holder_is_rejected(svm: LiteSVM, authority: Keypair) -> None:
    holder = Keypair().pubkey()
    with pytest.raises(ValueError, match="current holder"):
        nft.build_transfer(
            authority=authority,
            mint=Keypair().pubkey(),
            from_holder=holder,
            to_holder=holder,
            memo="x",
            recent_blockhash=svm.latest_blockhash(),
        )


def test_mints_by_two_authorities_in_turn_each_carry_their_own_authority(
    svm: LiteSVM, authority: Keypair
) -> None:
    """Instruction templates are kept per authority: alternating must not mix them up."""
    other = Keypair()
    svm.airdrop(other.pubkey(), 10 * 10**9)
    for signer in (authority, other, authority):
        minted = mint_one(svm, signer)
        state = read_mint(svm, minted.mint.pubkey())
        assert state.base.supply == 1 and state.base.mint_authority == signer.pubkey()
        assert state.permanent_delegate == signer.pubkey()
        assert balance(svm, minted.holder, minted.mint.pubkey()) == 1


def test_built_transactions_verify_and_name_only_real_accounts(
    svm: LiteSVM, authority: Keypair
) -> None:
    mint, holder = Keypair(), Keypair().pubkey()
    common: dict[str, Any] = {"memo": "m", "recent_blockhash": svm.latest_blockhash()}
    built = [
        nft.build_mint(
            authority=authority, mint=mint, holder=holder, name="N", symbol="S", uri="u",
            ticket_id=uuid.uuid4(), event_id=uuid.uuid4(), **common,
        ),
        nft.build_transfer(
            authority=authority, mint=mint.pubkey(), from_holder=holder,
            to_holder=Keypair().pubkey(), **common,
        ),
        nft.build_burn(authority=authority, mint=mint.pubkey(), holder=holder, **common),
    ]
    for signed in built:
        assert all(signed.transaction.verify_with_results())
        keys = signed.transaction.message.account_keys
        assert nft._MINT_SLOT not in keys and nft._ACCOUNT_SLOT not in keys
    assert built[0].transaction.message.account_keys[:2] == [authority.pubkey(), mint.pubkey()]
    assert holder_token_account(holder, mint.pubkey()) in built[0].transaction.message.account_keys


def test_signing_refuses_signers_that_do_not_match_the_message(authority: Keypair) -> None:
    stranger = Keypair()
    memo = token2022.memo("m")
    with pytest.raises(ValueError, match="required signers"):
        nft._sign({authority.pubkey(): authority, stranger.pubkey(): stranger},
                  authority.pubkey(), [memo], Hash.default())


def test_a_mint_address_given_by_the_caller_builds_the_same_transaction(
    svm: LiteSVM, authority: Keypair
) -> None:
    mint = Keypair()
    args: dict[str, Any] = {
        "authority": authority, "mint": mint, "holder": Keypair().pubkey(), "name": "N",
        "symbol": "S", "uri": "u", "ticket_id": uuid.uuid4(), "event_id": uuid.uuid4(),
        "memo": "m", "recent_blockhash": svm.latest_blockhash(),
    }
    assert nft.build_mint(**args, mint_address=mint.pubkey()).raw == nft.build_mint(**args).raw


def test_burn_closes_the_mint_and_the_holders_account_and_the_payer_gets_their_rent(
    svm: LiteSVM, authority: Keypair
) -> None:
    holder, payer = Keypair(), Keypair()
    svm.airdrop(payer.pubkey(), 10**9)
    minted = mint_one(svm, authority, holder=holder.pubkey())
    mint = minted.mint.pubkey()
    account = holder_token_account(holder.pubkey(), mint)
    rent = [svm.get_balance(mint) or 0, svm.get_balance(account) or 0]
    assert rent[1] == token2022.rent_exempt_lamports(170)
    before = svm.get_balance(payer.pubkey()) or 0
    burn = nft.build_burn(
        authority=authority, mint=mint, holder=holder.pubkey(), memo="burn-1",
        recent_blockhash=svm.latest_blockhash(), payer=payer, close_mint=True,
        holder_signer=holder,
    )
    send(svm, burn.transaction)
    assert svm.get_account(mint) is None and svm.get_account(account) is None
    # three signatures: the payer, the authority (burn, mint close), the holder
    assert (svm.get_balance(payer.pubkey()) or 0) - before == sum(rent) - 3 * 5_000


def test_an_external_holders_account_stays_when_the_mint_closes(
    svm: LiteSVM, authority: Keypair
) -> None:
    minted = mint_one(svm, authority)
    mint = minted.mint.pubkey()
    burn = nft.build_burn(
        authority=authority, mint=mint, holder=minted.holder, memo="burn-1",
        recent_blockhash=svm.latest_blockhash(), close_mint=True,
    )
    assert len(burn.transaction.signatures) == 1  # the authority alone
    send(svm, burn.transaction)
    assert svm.get_account(mint) is None
    assert balance(svm, minted.holder, mint) == 0  # empty, and the holder's to close


def test_a_mint_without_close_authority_burns_as_before_and_cannot_be_closed(
    svm: LiteSVM, authority: Keypair
) -> None:
    # The layout of earlier releases: no close authority, no collection.
    minted = mint_one(svm, authority, close_authority=False, group_member=False)
    mint = minted.mint.pubkey()
    fields = [("ticket_id", str(minted.ticket_id)), ("event_id", str(minted.event_id))]
    size = token2022.final_mint_size(
        "Concert #1", "TIX", "https://tickets.example/m/1.json", fields, close_authority=False
    )
    account = svm.get_account(mint)
    assert account is not None and len(account.data) == size
    assert account.lamports == token2022.rent_exempt_lamports(size)
    assert read_mint(svm, mint).close_authority is None
    common: dict[str, Any] = {"authority": authority, "mint": mint, "holder": minted.holder}
    closing = nft.build_burn(
        **common, memo="burn-1", recent_blockhash=svm.latest_blockhash(), close_mint=True
    )
    assert "InvalidAccountData" in send_failing(svm, closing.transaction)  # it fails whole
    assert read_mint(svm, mint).base.supply == 1
    send(svm, nft.build_burn(**common, memo="burn-2", recent_blockhash=svm.latest_blockhash())
         .transaction)
    assert read_mint(svm, mint).base.supply == 0


def test_only_the_holder_signs_for_the_holders_account(authority: Keypair) -> None:
    with pytest.raises(ValueError, match="not the holder"):
        nft.build_burn(
            authority=authority, mint=Keypair().pubkey(), holder=Keypair().pubkey(), memo="m",
            recent_blockhash=Hash.default(), close_mint=True, holder_signer=Keypair(),
        )
