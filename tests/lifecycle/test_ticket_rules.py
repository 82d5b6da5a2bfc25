"""Ticket rules: each rule by example, then every (status, op) combination decided."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chainworker.lifecycle.model import TxOp
from chainworker.lifecycle.ticket_rules import (
    METADATA_UPDATABLE,
    Allowed,
    BurnReason,
    Refusal,
    RefusalCode,
    TicketStatus,
    TransferStatus,
    check_operation,
    ticket_status_on_confirm,
)

MINT = "So11111111111111111111111111111111111111112"
T = TicketStatus


def test_mint_from_sold_makes_it_minted() -> None:
    assert check_operation(TxOp.MINT, T.SOLD, token_mint=None) == Allowed(TxOp.MINT, T.MINTED)


def test_mint_from_active_keeps_it_active() -> None:
    assert check_operation("mint", "active", token_mint=None) == Allowed(TxOp.MINT, T.ACTIVE)


@pytest.mark.parametrize("status", [T.SOLD, T.ACTIVE, T.MINTED, T.TRANSFERRED])
def test_mint_refused_when_a_mint_exists(status: TicketStatus) -> None:
    verdict = check_operation(TxOp.MINT, status, token_mint=MINT)
    assert isinstance(verdict, Refusal) and verdict.code is RefusalCode.ALREADY_MINTED


@pytest.mark.parametrize("status", [T.AVAILABLE, T.RESERVED, T.USED, T.REVOKED, T.CANCELLED])
def test_mint_refused_from_other_states(status: TicketStatus) -> None:
    verdict = check_operation(TxOp.MINT, status, token_mint=None)
    assert isinstance(verdict, Refusal) and verdict.code is RefusalCode.STATUS_NOT_ALLOWED
    assert status.value in verdict.message


@pytest.mark.parametrize("status", [T.MINTED, T.ACTIVE, T.TRANSFERRED])
def test_transfer_needs_an_accepted_transfer(status: TicketStatus) -> None:
    allowed = check_operation(
        TxOp.TRANSFER, status, token_mint=MINT, transfer_status=TransferStatus.ACCEPTED
    )
    assert allowed == Allowed(TxOp.TRANSFER, T.TRANSFERRED)
    for other in TransferStatus:
        if other is TransferStatus.ACCEPTED:
            continue
        verdict = check_operation(TxOp.TRANSFER, status, token_mint=MINT, transfer_status=other)
        assert isinstance(verdict, Refusal) and verdict.code is RefusalCode.TRANSFER_NOT_ACCEPTED
    missing = check_operation(TxOp.TRANSFER, status, token_mint=MINT, transfer_status=None)
    assert isinstance(missing, Refusal) and missing.code is RefusalCode.TRANSFER_MISSING


def test_transfer_and_burn_need_the_nft() -> None:
    for op in (TxOp.TRANSFER, TxOp.BURN):
        verdict = check_operation(
            op, T.ACTIVE, token_mint=None, transfer_status="accepted", burn_reason="refund"
        )
        assert isinstance(verdict, Refusal) and verdict.code is RefusalCode.NOT_MINTED


@pytest.mark.parametrize(
    ("reason", "result"), [(BurnReason.REVOKE, T.REVOKED), ("refund", T.REFUNDED)]
)
def test_burn_sets_revoked_or_refunded(reason: BurnReason | str, result: TicketStatus) -> None:
    for status in (T.MINTED, T.ACTIVE, T.TRANSFERRED):
        verdict = check_operation(TxOp.BURN, status, token_mint=MINT, burn_reason=reason)
        assert verdict == Allowed(TxOp.BURN, result)


def test_burn_refusals_are_explained() -> None:
    cases = {
        None: RefusalCode.BURN_REASON_MISSING,
        "lost": RefusalCode.UNKNOWN_BURN_REASON,
    }
    for reason, code in cases.items():
        verdict = check_operation(TxOp.BURN, T.MINTED, token_mint=MINT, burn_reason=reason)
        assert isinstance(verdict, Refusal) and verdict.code is code
    used = check_operation(TxOp.BURN, T.USED, token_mint=MINT, burn_reason="revoke")
    assert isinstance(used, Refusal) and used.code is RefusalCode.STATUS_NOT_ALLOWED


def test_unknown_values_are_refused_not_raised() -> None:
    bad_status = check_operation(TxOp.MINT, "lost", token_mint=None)
    assert isinstance(bad_status, Refusal)
    assert bad_status.code is RefusalCode.UNKNOWN_TICKET_STATUS
    bad_op = check_operation("teleport", T.SOLD, token_mint=None)
    assert isinstance(bad_op, Refusal) and bad_op.code is RefusalCode.UNKNOWN_OPERATION
    bad_transfer = check_operation(TxOp.TRANSFER, T.MINTED, token_mint=MINT, transfer_status="x")
    assert isinstance(bad_transfer, Refusal)
    assert bad_transfer.code is RefusalCode.UNKNOWN_TRANSFER_STATUS


def test_a_metadata_update_needs_an_nft_that_still_exists_and_keeps_the_status() -> None:
    for status in (T.MINTED, T.ACTIVE, T.TRANSFERRED, T.CHECKED_IN, T.USED):
        verdict = check_operation(TxOp.METADATA_UPDATE, status, token_mint=MINT)
        assert verdict == Allowed(TxOp.METADATA_UPDATE, status)
        assert ticket_status_on_confirm(TxOp.METADATA_UPDATE, status) is None
    unminted = check_operation(TxOp.METADATA_UPDATE, T.ACTIVE, token_mint=None)
    assert isinstance(unminted, Refusal) and unminted.code is RefusalCode.NOT_MINTED
    for status in (T.REVOKED, T.REFUNDED, T.CANCELLED, T.EXPIRED, T.SOLD):
        verdict = check_operation(TxOp.METADATA_UPDATE, status, token_mint=MINT)
        assert isinstance(verdict, Refusal) and verdict.code is RefusalCode.STATUS_NOT_ALLOWED


@pytest.mark.parametrize("status", [T.MINTED, T.ACTIVE, T.TRANSFERRED, T.CHECKED_IN, T.USED])
def test_verify_a_minted_ticket_that_is_no_member_yet_keeps_its_status(
    status: TicketStatus,
) -> None:
    assert check_operation(TxOp.VERIFY, status, token_mint=MINT) == Allowed(TxOp.VERIFY, status)
    assert ticket_status_on_confirm(TxOp.VERIFY, status) is None


@pytest.mark.parametrize(
    ("status", "token_mint", "verified", "code"),
    [
        (T.MINTED, None, False, RefusalCode.NOT_MINTED),
        (T.SOLD, None, False, RefusalCode.NOT_MINTED),
        (T.SOLD, MINT, False, RefusalCode.STATUS_NOT_ALLOWED),
        (T.REFUNDED, MINT, False, RefusalCode.BURNED),
        (T.REVOKED, MINT, True, RefusalCode.BURNED),
        (T.CANCELLED, MINT, False, RefusalCode.STATUS_NOT_ALLOWED),
        (T.MINTED, MINT, True, RefusalCode.ALREADY_VERIFIED),
    ],
)
def test_verify_refusals(
    status: TicketStatus, token_mint: str | None, verified: bool, code: RefusalCode
) -> None:
    verdict = check_operation(TxOp.VERIFY, status, token_mint=token_mint, verified=verified)
    assert isinstance(verdict, Refusal) and verdict.code is code, verdict


def test_status_on_confirm_never_overwrites_a_later_state() -> None:
    assert ticket_status_on_confirm(TxOp.MINT, T.SOLD) is T.MINTED
    assert ticket_status_on_confirm(TxOp.MINT, T.ACTIVE) is None
    assert ticket_status_on_confirm(TxOp.MINT, T.CHECKED_IN) is None
    assert ticket_status_on_confirm(TxOp.TRANSFER, T.ACTIVE) is T.TRANSFERRED
    assert ticket_status_on_confirm(TxOp.TRANSFER, T.USED) is None
    assert ticket_status_on_confirm(TxOp.BURN, T.MINTED, burn_reason="refund") is T.REFUNDED
    assert ticket_status_on_confirm(TxOp.BURN, T.CANCELLED, burn_reason="revoke") is None
    assert ticket_status_on_confirm(TxOp.BURN, T.MINTED) is None
    assert ticket_status_on_confirm(TxOp.MINT, "nonsense") is None


ALLOWED_FROM = {
    TxOp.MINT: {T.SOLD, T.ACTIVE},
    TxOp.TRANSFER: {T.MINTED, T.ACTIVE, T.TRANSFERRED},
    TxOp.BURN: {T.MINTED, T.ACTIVE, T.TRANSFERRED},
    TxOp.METADATA_UPDATE: {T.MINTED, T.ACTIVE, T.TRANSFERRED, T.CHECKED_IN, T.USED},
    TxOp.VERIFY: {T.MINTED, T.ACTIVE, T.TRANSFERRED, T.CHECKED_IN, T.USED},
}


@settings(max_examples=300, deadline=None)
@given(
    op=st.sampled_from(TxOp),
    status=st.sampled_from(TicketStatus),
    token_mint=st.none() | st.just(MINT),
    transfer_status=st.none() | st.sampled_from(TransferStatus),
    burn_reason=st.none() | st.sampled_from(BurnReason),
    verified=st.booleans(),
)
def test_every_combination_is_allowed_or_explained(
    op: TxOp,
    status: TicketStatus,
    token_mint: str | None,
    transfer_status: TransferStatus | None,
    burn_reason: BurnReason | None,
    verified: bool,
) -> None:
    verdict = check_operation(
        op, status, token_mint=token_mint, transfer_status=transfer_status,
        burn_reason=burn_reason, verified=verified,
    )
    if isinstance(verdict, Refusal):
        assert verdict.message
        assert isinstance(verdict.code, RefusalCode)
        return
    assert verdict.op is op
    assert status in ALLOWED_FROM[op]
    if op is TxOp.MINT:
        assert token_mint is None
    else:
        assert token_mint is not None
    if op is TxOp.TRANSFER:
        assert transfer_status is TransferStatus.ACCEPTED
    if op is TxOp.BURN:
        assert burn_reason is not None
    if op is TxOp.VERIFY:
        assert not verified
    # What the decision promised is what confirmation sets, when nothing changed meanwhile.
    expected = ticket_status_on_confirm(op, status, burn_reason=burn_reason)
    assert verdict.on_confirm == (expected or status)


def test_the_seed_status_sets() -> None:
    assert len(TicketStatus) == 12
    assert {s.value for s in TransferStatus} == {
        "pending", "accepted", "rejected", "cancelled", "completed", "expired",
    }  # fmt: skip


@given(st.sampled_from(list(TicketStatus)))
def test_a_rotation_goes_in_every_status_but_needs_an_nft(status: TicketStatus) -> None:
    # Whatever the status, an NFT the old key still holds must not stay in its hands.
    allowed = check_operation(TxOp.METADATA_UPDATE, status, token_mint="M", rotation=True)
    assert allowed == Allowed(TxOp.METADATA_UPDATE, status)
    refused = check_operation(TxOp.METADATA_UPDATE, status, token_mint=None, rotation=True)
    assert isinstance(refused, Refusal) and refused.code is RefusalCode.NOT_MINTED
    plain = check_operation(TxOp.METADATA_UPDATE, status, token_mint="M")
    assert isinstance(plain, Allowed) == (status in METADATA_UPDATABLE)
