"""Metadata updates against the real Token-2022 program in LiteSVM: fields set and removed as
planned, the rent of a grown account added, and a change too large for a packet refused."""

from __future__ import annotations

import dataclasses
import hashlib
import struct
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from solders.keypair import Keypair
from solders.litesvm import LiteSVM
from solders.pubkey import Pubkey
from solders.transaction_metadata import FailedTransactionMetadata, TransactionMetadata

from chainworker.chain import group, metadata, nft, token2022
from chainworker.lifecycle import metadata as rules
from chainworker.lifecycle.metadata import VALUE_MAX_BYTES, MetadataChange, check_change
from tests.chain.test_nft_svm import mint_one, read_mint, send, send_failing


@pytest.fixture(scope="module")
def svm() -> LiteSVM:
    return LiteSVM()


@pytest.fixture(scope="module")
def authority(svm: LiteSVM) -> Keypair:
    keypair = Keypair()
    svm.airdrop(keypair.pubkey(), 1000 * 10**9)
    return keypair


@pytest.fixture(scope="module")
def payer(svm: LiteSVM) -> Keypair:
    keypair = Keypair()
    svm.airdrop(keypair.pubkey(), 100 * 10**9)
    return keypair


def planned(svm: LiteSVM, mint: Pubkey, change: MetadataChange) -> metadata.Plan:
    account = svm.get_account(mint)
    assert account is not None
    return metadata.plan_update(metadata.read_mint(bytes(account.data), account.lamports), change)


def build(
    svm: LiteSVM, authority: Keypair, mint: Pubkey, plan: metadata.Plan,
    payer: Keypair | None = None,
) -> nft.SignedTx:
    return metadata.build_update(
        authority=authority, mint=mint, plan=plan, memo=f"cw:{uuid.uuid4()}:1",
        recent_blockhash=svm.latest_blockhash(), compute=nft.ComputeBudget(300_000, 1),
        payer=payer,
    )


def assert_rent_exempt(svm: LiteSVM, mint: Pubkey, size: int) -> None:
    account = svm.get_account(mint)
    assert account is not None and len(account.data) == size
    assert account.lamports >= token2022.rent_exempt_lamports(size)


def test_the_remove_key_instruction_is_the_interfaces_layout() -> None:
    mint, authority = Pubkey.new_unique(), Pubkey.new_unique()
    ix = metadata.remove_token_metadata_key(mint=mint, update_authority=authority, key="seat")
    disc = hashlib.sha256(b"spl_token_metadata_interface:remove_key_ix").digest()[:8]
    assert bytes(ix.data) == disc + b"\x01" + struct.pack("<I", 4) + b"seat"
    assert [(m.pubkey, m.is_signer, m.is_writable) for m in ix.accounts] == [
        (mint, False, True), (authority, True, False),
    ]
    assert ix.program_id == token2022.TOKEN_2022_PROGRAM_ID


def test_a_growing_update_is_paid_by_the_payer_and_leaves_the_mint_rent_exempt(
    svm: LiteSVM, authority: Keypair, payer: Keypair
) -> None:
    mint = mint_one(svm, authority).mint.pubkey()
    change = check_change(
        {"uri": "https://moved.example/events/2/tickets/1.json", "seat": "A-7",
         "section": "Balcony"}, None,
    )
    plan = planned(svm, mint, change)
    before = svm.get_account(mint)
    assert before is not None and plan.size > len(before.data) and plan.top_up > 0
    # The mint's membership to come (its verify appends TokenGroupMember) stays paid for.
    assert before.lamports + plan.top_up == token2022.rent_exempt_lamports(
        plan.size + group.TOKEN_GROUP_MEMBER_TLV
    )
    balance = svm.get_balance(payer.pubkey()) or 0
    signed = build(svm, authority, mint, plan, payer)
    header = signed.transaction.message.header
    assert header.num_required_signatures == 2 and header.num_readonly_signed_accounts == 1
    send(svm, signed.transaction)
    assert_rent_exempt(svm, mint, plan.size)
    paid = balance - (svm.get_balance(payer.pubkey()) or 0)
    assert paid >= plan.top_up  # the payer, not the authority
    state = read_mint(svm, mint).metadata
    assert state is not None
    assert state.uri == "https://moved.example/events/2/tickets/1.json"
    assert (state.field("seat"), state.field("section")) == ("A-7", "Balcony")
    assert state.name == "Concert #1" and state.field("ticket_id") is not None


def test_without_the_top_up_token_2022_refuses_to_grow_the_mint(
    svm: LiteSVM, authority: Keypair
) -> None:
    mint = mint_one(svm, authority).mint.pubkey()
    plan = planned(svm, mint, check_change({"seat": "B" * 100}, None))
    unpaid = dataclasses.replace(plan, top_up=0)
    assert "InsufficientFundsForRent" in send_failing(
        svm, build(svm, authority, mint, unpaid).transaction
    )


def test_removing_keys_shrinks_the_mint_and_adds_nothing(
    svm: LiteSVM, authority: Keypair
) -> None:
    mint = mint_one(svm, authority).mint.pubkey()
    seated = planned(svm, mint, check_change({"seat": "C-1", "gate": "4"}, None))
    send(svm, build(svm, authority, mint, seated).transaction)
    # "row" was never set: removing it is a no-op (idempotent), not an error
    plan = planned(svm, mint, check_change({"status": "checked_in"}, ["seat", "gate", "row"]))
    assert plan.top_up == 0
    send(svm, build(svm, authority, mint, plan).transaction)
    assert_rent_exempt(svm, mint, plan.size)
    state = read_mint(svm, mint).metadata
    assert state is not None
    assert [key for key, _ in state.additional] == ["ticket_id", "event_id", "status"]


def test_a_value_at_the_limit_fits_and_a_change_too_large_for_a_packet_is_refused(
    svm: LiteSVM, authority: Keypair, payer: Keypair
) -> None:
    mint = mint_one(svm, authority).mint.pubkey()
    longest = check_change({"note": "n" * VALUE_MAX_BYTES}, None)
    plan = planned(svm, mint, longest)
    send(svm, build(svm, authority, mint, plan, payer).transaction)  # with the payer's signature
    assert_rent_exempt(svm, mint, plan.size)
    too_large = check_change({"note": "m" * VALUE_MAX_BYTES, "other": "o" * 300}, None)
    with pytest.raises(nft.TooLarge, match=r"does not fit in one transaction .* fewer or shorter"):
        build(svm, authority, mint, planned(svm, mint, too_large))


def test_a_mint_without_metadata_cannot_be_planned() -> None:
    with pytest.raises(ValueError):
        metadata.read_mint(bytes(82), 1)


keys = st.sampled_from(["seat", "section", "status", "checked_in_at", "gate"])
values = st.text(st.characters(codec="utf-8", categories=["L", "N", "P"]), max_size=24)
changes = st.tuples(
    st.dictionaries(keys | st.just("uri"), values.filter(str.strip), max_size=4),
    st.lists(keys, max_size=3, unique=True),
).filter(lambda fr: (fr[0] or fr[1]) and not set(fr[0]) & set(fr[1])).map(
    lambda fr: check_change(*fr)
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(history=st.lists(changes, min_size=1, max_size=3))
def test_any_sequence_of_updates_lands_as_planned_and_stays_rent_exempt(
    svm: LiteSVM, authority: Keypair, history: list[MetadataChange]
) -> None:
    mint = mint_one(svm, authority).mint.pubkey()
    for change in history:
        account = svm.get_account(mint)
        assert account is not None
        before = metadata.read_mint(bytes(account.data), account.lamports)
        plan = metadata.plan_update(before, change)
        result = svm.send_transaction(build(svm, authority, mint, plan).transaction)
        assert isinstance(result, TransactionMetadata), result
        assert not isinstance(result, FailedTransactionMetadata)
        assert_rent_exempt(svm, mint, plan.size)
        after = read_mint(svm, mint).metadata
        assert after is not None
        expected = rules.apply(before.metadata, change)
        assert (after.name, after.symbol, after.uri, after.additional) == (
            expected.name, expected.symbol, expected.uri, expected.additional,
        )
