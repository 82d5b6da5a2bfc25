"""Authority rotation against the real Token-2022 program in LiteSVM: every platform
authority of a ticket mint moves to the new key in one transaction signed by the old one;
afterwards the new key moves, updates and burns the NFT and closes its mint, and the old
one can do none of it."""

from __future__ import annotations

import uuid

import pytest
from solders.keypair import Keypair
from solders.litesvm import LiteSVM
from solders.pubkey import Pubkey

from chainworker.chain import authority, group, metadata, nft
from chainworker.lifecycle.metadata import check_change
from tests.chain.test_nft_svm import balance, mint_one, read_mint, send, send_failing


@pytest.fixture
def svm() -> LiteSVM:
    return LiteSVM()


def funded(svm: LiteSVM) -> Keypair:
    keypair = Keypair()
    svm.airdrop(keypair.pubkey(), 100 * 10**9)
    return keypair


def rotate(svm: LiteSVM, old: Keypair, new: Pubkey, mint: Pubkey,
           payer: Keypair | None = None) -> authority.Held:
    account = svm.get_account(mint)
    assert account is not None
    held = authority.held_by(bytes(account.data), old.pubkey())
    signed = authority.build_rotation(
        current=old, new=new, mint=mint, held=held, memo=f"cw:{uuid.uuid4()}:1",
        recent_blockhash=svm.latest_blockhash(), compute=nft.ComputeBudget(200_000, 1),
        payer=payer,
    )
    send(svm, signed.transaction)
    return held


def test_every_platform_authority_moves_and_only_the_new_key_acts(svm: LiteSVM) -> None:
    old, new, payer = funded(svm), funded(svm), funded(svm)
    minted = mint_one(svm, old)
    mint = minted.mint.pubkey()
    held = rotate(svm, old, new.pubkey(), mint, payer)
    assert held.types == (
        authority.CLOSE_MINT, authority.PERMANENT_DELEGATE, authority.METADATA_POINTER,
        authority.GROUP_MEMBER_POINTER,
    ) and held.metadata

    state = read_mint(svm, mint)
    account = svm.get_account(mint)
    assert account is not None
    pointers = group.parse_group_extensions(bytes(account.data))
    assert state.permanent_delegate == new.pubkey()
    assert state.close_authority == new.pubkey()
    assert state.metadata is not None and state.metadata.update_authority == new.pubkey()
    assert state.metadata_pointer is not None
    assert state.metadata_pointer.authority == new.pubkey()
    assert pointers.member_pointer is not None
    assert pointers.member_pointer.authority == new.pubkey()
    # The mint authority stays: InitializeMember needs it with the group's authority.
    assert state.base.mint_authority == old.pubkey()
    assert not authority.held_by(bytes(account.data), old.pubkey()).types

    # A rotation is done: nothing is left for the old key to move.
    with pytest.raises(ValueError, match="nothing to rotate"):
        rotate(svm, old, new.pubkey(), mint)

    receiver = Keypair().pubkey()

    def transfer(signer: Keypair) -> nft.SignedTx:
        return nft.build_transfer(
            authority=signer, mint=mint, from_holder=minted.holder, to_holder=receiver,
            memo="move", recent_blockhash=svm.latest_blockhash(), payer=payer,
        )

    assert "owner does not match" in send_failing(svm, transfer(old).transaction).lower()
    send(svm, transfer(new).transaction)
    assert balance(svm, receiver, mint) == 1

    change = check_change({"seat": "A-1"}, [])
    account = svm.get_account(mint)
    assert account is not None
    plan = metadata.plan_update(metadata.read_mint(bytes(account.data), account.lamports), change)
    send(svm, metadata.build_update(
        authority=new, mint=mint, plan=plan, memo="update",
        recent_blockhash=svm.latest_blockhash(), payer=payer,
    ).transaction)
    updated = read_mint(svm, mint).metadata
    assert updated is not None and updated.field("seat") == "A-1"

    send(svm, nft.build_burn(
        authority=new, mint=mint, holder=receiver, memo="burn",
        recent_blockhash=svm.latest_blockhash(), payer=payer, close_mint=True,
    ).transaction)
    closed = svm.get_account(mint)
    assert closed is None or closed.lamports == 0


def test_a_key_that_holds_nothing_cannot_rotate(svm: LiteSVM) -> None:
    old, stranger = funded(svm), funded(svm)
    mint = mint_one(svm, old).mint.pubkey()
    account = svm.get_account(mint)
    assert account is not None
    assert not authority.held_by(bytes(account.data), stranger.pubkey()).anything
    with pytest.raises(ValueError, match="the new authority is the old one"):
        authority.build_rotation(
            current=stranger, new=stranger.pubkey(), mint=mint,
            held=authority.Held((authority.PERMANENT_DELEGATE,)), memo="x",
            recent_blockhash=svm.latest_blockhash(),
        )
    # Signed by a key the mint does not name: the token program refuses it.
    signed = authority.build_rotation(
        current=stranger, new=Keypair().pubkey(), mint=mint,
        held=authority.Held((authority.PERMANENT_DELEGATE,), True), memo="forged",
        recent_blockhash=svm.latest_blockhash(),
    )
    assert "owner does not match" in send_failing(svm, signed.transaction).lower()
    assert read_mint(svm, mint).permanent_delegate == old.pubkey()
