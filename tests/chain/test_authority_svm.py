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

from chainworker.chain import authority, collection, group, metadata, nft
from chainworker.lifecycle.metadata import check_change
from tests.chain.test_group_svm import INCORRECT_UPDATE_AUTHORITY, groups_of, new_group
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
        authority.MINT_TOKENS, authority.CLOSE_MINT, authority.PERMANENT_DELEGATE,
        authority.METADATA_POINTER, authority.GROUP_MEMBER_POINTER,
    ) and held.metadata and not held.group

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
    # Kept for InitializeMember (the ticket is no member yet): now the new key's.
    assert state.base.mint_authority == new.pubkey()
    assert not authority.held_by(bytes(account.data), old.pubkey()).anything

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


def test_a_groups_authorities_move_and_members_join_under_either_mix(svm: LiteSVM) -> None:
    """The group and its tickets are rotated one by one: a verify in between is signed by
    the member's mint authority and the group's update authority, whichever keys they are."""
    old, new, payer = funded(svm), funded(svm), funded(svm)
    group_mint, _ = new_group(svm, old)
    address = group_mint.pubkey()
    early, late, last = (mint_one(svm, old).mint.pubkey() for _ in range(3))

    # The ticket first: its mint authority is the new key's, the group's the old key's.
    rotate(svm, old, new.pubkey(), early)
    send(svm, collection.build_verify(
        authority=new, group_authority=old, mint=early, group_address=address,
        memo="cw:verify:early", recent_blockhash=svm.latest_blockhash(), payer=payer,
    ).transaction)

    held = rotate(svm, old, new.pubkey(), address, payer)
    assert held.group and held.metadata
    assert held.types == (authority.MINT_TOKENS, authority.METADATA_POINTER,
                          authority.GROUP_POINTER)
    rotated = groups_of(svm, address)
    assert rotated.group is not None and rotated.group.update_authority == new.pubkey()
    assert rotated.group_pointer is not None and rotated.group_pointer.authority == new.pubkey()
    state = read_mint(svm, address)
    assert state.base.mint_authority == new.pubkey()
    assert state.metadata is not None and state.metadata.update_authority == new.pubkey()

    # The group now: a ticket still the old key's joins with both signatures...
    send(svm, collection.build_verify(
        authority=old, group_authority=new, mint=late, group_address=address,
        memo="cw:verify:late", recent_blockhash=svm.latest_blockhash(), payer=payer,
    ).transaction)
    # ...and the old key alone adds no member any more.
    failed = send_failing(svm, collection.build_verify(
        authority=old, mint=last, group_address=address, memo="cw:verify:last",
        recent_blockhash=svm.latest_blockhash(), payer=payer,
    ).transaction)
    assert str(INCORRECT_UPDATE_AUTHORITY) in failed, failed
    rotate(svm, old, new.pubkey(), last)
    send(svm, collection.build_verify(
        authority=new, mint=last, group_address=address, memo="cw:verify:new",
        recent_blockhash=svm.latest_blockhash(), payer=payer,
    ).transaction)
    final = groups_of(svm, address).group
    assert final is not None and final.size == 3
