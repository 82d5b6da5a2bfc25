"""Event collections against the real Token-2022 program in LiteSVM (the localnet's): the
group, verified members, and why a mint made before collections can never be one."""

from __future__ import annotations

import uuid

import pytest
from solders.keypair import Keypair
from solders.litesvm import LiteSVM
from solders.message import MessageV0
from solders.pubkey import Pubkey
from solders.system_program import CreateAccountParams, create_account
from solders.transaction import VersionedTransaction
from spl.token.instructions import initialize_mint2
from spl.token.models import InitializeMint2Params

from chainworker.chain import collection, group, nft, token2022
from chainworker.chain.token2022 import TOKEN_2022_PROGRAM_ID
from tests.chain.test_nft_svm import mint_one, read_mint, send, send_failing

# spl-token-group-interface's errors, from 3,406,457,176 on (Custom codes).
INCORRECT_MINT_AUTHORITY = 3_406_457_179
INCORRECT_UPDATE_AUTHORITY = 3_406_457_180


@pytest.fixture(scope="module")
def svm() -> LiteSVM:
    return LiteSVM()


@pytest.fixture(scope="module")
def authority(svm: LiteSVM) -> Keypair:
    keypair = Keypair()
    svm.airdrop(keypair.pubkey(), 100 * 10**9)
    return keypair


def new_group(
    svm: LiteSVM, authority: Keypair, name: str = "Summer Live"
) -> tuple[Keypair, uuid.UUID]:
    keypair, event_id = Keypair(), uuid.uuid4()
    signed = collection.build_event_group(
        authority=authority, group_mint=keypair, name=name, symbol="TIX", event_id=event_id,
        memo="cw:group:test", recent_blockhash=svm.latest_blockhash(),
    )
    send(svm, signed.transaction)
    return keypair, event_id


def groups_of(svm: LiteSVM, address: Pubkey) -> group.GroupExtensions:
    account = svm.get_account(address)
    assert account is not None
    return group.parse_group_extensions(bytes(account.data))


def verify(svm: LiteSVM, authority: Keypair, mint: Pubkey, group_address: Pubkey,
           payer: Keypair | None = None) -> VersionedTransaction:
    return collection.build_verify(
        authority=authority, mint=mint, group_address=group_address, memo="cw:verify:1",
        recent_blockhash=svm.latest_blockhash(), payer=payer,
    ).transaction


def raw(svm: LiteSVM, payer: Keypair, *instructions, signers=()) -> VersionedTransaction:
    message = MessageV0.try_compile(payer.pubkey(), list(instructions), [],
                                    svm.latest_blockhash())
    return VersionedTransaction(message, [payer, *signers])


def test_an_event_group_has_the_authority_as_update_and_mint_authority(
    svm: LiteSVM, authority: Keypair
) -> None:
    keypair, event_id = new_group(svm, authority)
    address = keypair.pubkey()
    found = groups_of(svm, address)
    assert found.group_pointer == group.GroupPointer(authority.pubkey(), address)
    assert found.group == group.TokenGroup(authority.pubkey(), address, 0, group.MAX_GROUP_SIZE)
    assert found.member_pointer is None and found.member is None
    state = read_mint(svm, address)
    assert state.base.supply == 0 and state.base.mint_authority == authority.pubkey()
    assert state.permanent_delegate is None
    assert state.metadata is not None and state.metadata.name == "Summer Live"
    assert state.metadata.field("event_id") == str(event_id)
    account = svm.get_account(address)
    assert account is not None
    size = collection.group_mint_size("Summer Live", "TIX", event_id)
    assert len(account.data) == size
    assert account.lamports == svm.minimum_balance_for_rent_exemption(size)

    svm.expire_blockhash()
    again = collection.build_event_group(
        authority=authority, group_mint=keypair, name="Summer Live", symbol="TIX",
        event_id=event_id, memo="cw:group:again", recent_blockhash=svm.latest_blockhash(),
    )
    assert "already in use" in send_failing(svm, again.transaction)


def test_verified_tickets_are_numbered_members_and_mint_no_more(
    svm: LiteSVM, authority: Keypair
) -> None:
    keypair, _ = new_group(svm, authority)
    address = keypair.pubkey()
    payer = Keypair()
    svm.airdrop(payer.pubkey(), 10**9)
    mints = [mint_one(svm, authority).mint.pubkey() for _ in range(3)]
    for index, mint in enumerate(mints):
        send(svm, verify(svm, authority, mint, address, payer=payer if index == 1 else None))
    numbers = []
    for mint in mints:
        member = groups_of(svm, mint).member
        assert member is not None and (member.mint, member.group) == (mint, address)
        numbers.append(member.member_number)
        state = read_mint(svm, mint)
        assert state.base.mint_authority is None and state.base.supply == 1
        # Funded at creation for exactly this size: Token-2022 added no lamports.
        account = svm.get_account(mint)
        assert account is not None
        assert account.lamports == svm.minimum_balance_for_rent_exemption(len(account.data))
    assert numbers == [1, 2, 3]
    found = groups_of(svm, address).group
    assert found is not None and found.size == 3

    # A replay finds no mint authority to sign: verify lands once.
    svm.expire_blockhash()
    error = send_failing(svm, verify(svm, authority, mints[0], address))
    assert f"Custom({INCORRECT_MINT_AUTHORITY})" in error or str(INCORRECT_MINT_AUTHORITY) in error
    found = groups_of(svm, address).group
    assert found is not None and found.size == 3


def test_only_the_groups_update_authority_adds_members(svm: LiteSVM, authority: Keypair) -> None:
    keypair, _ = new_group(svm, authority)
    stranger = Keypair()
    svm.airdrop(stranger.pubkey(), 10 * 10**9)
    forged = mint_one(svm, stranger).mint.pubkey()  # a mint of the same layout, its own
    join = group.initialize_member(
        member=forged, member_mint_authority=stranger.pubkey(), group=keypair.pubkey(),
        group_update_authority=stranger.pubkey(),
    )
    error = send_failing(svm, raw(svm, stranger, join))
    assert str(INCORRECT_UPDATE_AUTHORITY) in error
    assert groups_of(svm, forged).member is None


def test_a_mint_made_before_collections_can_never_be_a_member(
    svm: LiteSVM, authority: Keypair
) -> None:
    """The two Token-2022 rules that keep tickets minted before this release out of groups:
    InitializeMember needs the member mint's mint authority, gone from those mints, and the
    GroupMemberPointer, which can only be added before InitializeMint."""
    keypair, _ = new_group(svm, authority)
    address = keypair.pubkey()
    legacy = mint_one(svm, authority, group_member=False).mint.pubkey()
    join = group.initialize_member(
        member=legacy, member_mint_authority=authority.pubkey(), group=address,
        group_update_authority=authority.pubkey(),
    )
    error = send_failing(svm, raw(svm, authority, join))
    assert "InitializeMember" in error and str(INCORRECT_MINT_AUTHORITY) in error

    # A mint that still has its mint authority but no pointer: refused for want of it.
    bare = Keypair()
    create = create_account(CreateAccountParams(
        from_pubkey=authority.pubkey(), to_pubkey=bare.pubkey(),
        lamports=token2022.rent_exempt_lamports(500), space=token2022.BASE_MINT_SIZE,
        owner=TOKEN_2022_PROGRAM_ID,
    ))
    init = initialize_mint2(InitializeMint2Params(
        decimals=0, program_id=TOKEN_2022_PROGRAM_ID, mint=bare.pubkey(),
        mint_authority=authority.pubkey(),
    ))
    send(svm, raw(svm, authority, create, init, signers=[bare]))
    join_bare = group.initialize_member(
        member=bare.pubkey(), member_mint_authority=authority.pubkey(), group=address,
        group_update_authority=authority.pubkey(),
    )
    error = send_failing(svm, raw(svm, authority, join_bare))
    assert "must have the group-member-pointer extension" in error
    # ... and the pointer cannot be added once the mint is initialized.
    late = group.initialize_group_member_pointer(bare.pubkey(), authority.pubkey(), bare.pubkey())
    send_failing(svm, raw(svm, authority, late))
    assert groups_of(svm, bare.pubkey()) == group.GroupExtensions()
    found = groups_of(svm, address).group
    assert found is not None and found.size == 0


def test_the_group_transaction_fits_with_the_longest_name(svm: LiteSVM, authority: Keypair) -> None:
    keypair, _ = new_group(svm, authority, name="É" * (nft.NAME_MAX_BYTES // 2))
    state = read_mint(svm, keypair.pubkey())
    assert state.metadata is not None and len(state.metadata.name.encode()) == nft.NAME_MAX_BYTES
    with pytest.raises(ValueError, match="name is"):
        collection.build_event_group(
            authority=authority, group_mint=Keypair(), name="N" * (nft.NAME_MAX_BYTES + 1),
            symbol="TIX", event_id=uuid.uuid4(), memo="m", recent_blockhash=svm.latest_blockhash(),
        )
