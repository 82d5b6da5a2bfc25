"""Which ticket states allow which chain operation, and what a confirmed one sets.

Decisions, not exceptions: every check returns `Allowed` or a `Refusal` with a
stable code (for the recorded outcome, metrics and the API) and a sentence for
people. Unknown status strings are refused the same way.

Choices made here:
- Mint is allowed from `sold`, and from `active` when the ticket has no
  `token_mint` yet (a ticket activated before it was put on chain). A mint
  confirmed for a `sold` ticket makes it `minted`; an `active` ticket stays
  `active` (moving it back to `minted` would undo its activation) and only gains
  its `token_mint`.
- Any ticket with a `token_mint` is already minted, whatever its status: a burned one
  too, whose burn closed its mint and freed the mint's derived address; this refusal is
  one of the two reasons no mint lands there again (the other: no signed mint bytes for
  it are valid any more, see README "A closed mint's address takes no mint again").
- Transfer and burn need the NFT to exist (`token_mint` set) and a status of
  minted, active or transferred. Transfer also needs its `ticket_transfers` row
  to be `accepted`.
- Burn needs a reason: `revoke` -> revoked, `refund` -> refunded.
- A metadata update needs an NFT that still exists: `token_mint` set and a status of
  minted, active, transferred, checked_in or used (a checked-in ticket's NFT records its
  attendance). A confirmed update leaves the ticket's status as it is.
- Verify (the ticket's mint joins its event's group) needs the NFT to exist and not to be
  burned, in a status whose ticket is still valid or was used: minted, active,
  transferred, checked in or used; and the ticket not to be a member yet. It changes no
  status. (Whether the event has a group, and whether the mint can join one, the worker
  finds out before signing: see `pipeline.prepare`.)
- When a transaction confirms after the ticket moved on (checked in, used,
  cancelled...), the status is left alone: the chain change is still recorded,
  but a later ticket state is never overwritten by an earlier intent.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import TypeVar

from chainworker.lifecycle.model import BurnReason, TxOp


class TicketStatus(StrEnum):
    """`tickets.status`, the seed's twelve values (migration 006)."""

    AVAILABLE = "available"
    RESERVED = "reserved"
    SOLD = "sold"
    MINTED = "minted"
    ACTIVE = "active"
    TRANSFERRED = "transferred"
    CHECKED_IN = "checked_in"
    USED = "used"
    REVOKED = "revoked"
    REFUNDED = "refunded"
    EXPIRED = "expired"
    CANCELLED = "cancelled"


class TransferStatus(StrEnum):
    """`ticket_transfers.status`, the seed's six values."""

    PENDING = "pending"
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    CANCELLED = "cancelled"
    COMPLETED = "completed"
    EXPIRED = "expired"


class RefusalCode(StrEnum):
    UNKNOWN_TICKET_STATUS = "unknown_ticket_status"
    UNKNOWN_OPERATION = "unknown_operation"
    STATUS_NOT_ALLOWED = "status_not_allowed"
    ALREADY_MINTED = "already_minted"
    NOT_MINTED = "not_minted"
    TRANSFER_MISSING = "transfer_missing"
    TRANSFER_NOT_ACCEPTED = "transfer_not_accepted"
    UNKNOWN_TRANSFER_STATUS = "unknown_transfer_status"
    BURN_REASON_MISSING = "burn_reason_missing"
    UNKNOWN_BURN_REASON = "unknown_burn_reason"
    # Found by the worker while preparing an attempt, beyond the status rules.
    UNKNOWN_TICKET = "unknown_ticket"
    NO_HOLDER = "no_holder"
    INVALID_WALLET = "invalid_wallet"
    SPEND_LIMIT = "spend_limit"
    INVALID_INPUT = "invalid_input"
    # The transfer's sender is not who holds the ticket (an earlier transfer did not happen).
    NOT_HOLDER = "not_holder"
    # No wallet holds the ticket's NFT on chain: nothing to move or burn.
    NFT_MISSING = "nft_missing"
    # Verify: the NFT was burned; the ticket is a member already; its event has no group
    # on chain; its mint can never be a member (made before event collections).
    BURNED = "burned"
    ALREADY_VERIFIED = "already_verified"
    GROUP_MISSING = "group_missing"
    NOT_A_MEMBER_MINT = "not_a_member_mint"
    # The NFT's authority on chain is not one this worker holds, or a rotation asks for a
    # new authority that is not this worker's; the old authority holds nothing of the NFT.
    AUTHORITY_MISMATCH = "authority_mismatch"
    ALREADY_ROTATED = "already_rotated"


@dataclass(frozen=True, slots=True)
class Allowed:
    """The operation may be recorded; `on_confirm` is the ticket status once it confirms."""

    op: TxOp
    on_confirm: TicketStatus


@dataclass(frozen=True, slots=True)
class Refusal:
    code: RefusalCode
    message: str


Verdict = Allowed | Refusal
_E = TypeVar("_E", bound=StrEnum)

MINTABLE: frozenset[TicketStatus] = frozenset({TicketStatus.SOLD, TicketStatus.ACTIVE})
ON_CHAIN_MOVABLE: frozenset[TicketStatus] = frozenset(
    {TicketStatus.MINTED, TicketStatus.ACTIVE, TicketStatus.TRANSFERRED}
)
METADATA_UPDATABLE: frozenset[TicketStatus] = ON_CHAIN_MOVABLE | {
    TicketStatus.CHECKED_IN, TicketStatus.USED
}
BURN_RESULT: dict[BurnReason, TicketStatus] = {
    BurnReason.REVOKE: TicketStatus.REVOKED,
    BurnReason.REFUND: TicketStatus.REFUNDED,
}
VERIFIABLE: frozenset[TicketStatus] = ON_CHAIN_MOVABLE | {
    TicketStatus.CHECKED_IN, TicketStatus.USED,
}
# A transfer row that is completed once its transaction confirms.
TRANSFER_STATUS_ON_CONFIRM = TransferStatus.COMPLETED


def check_operation(
    op: TxOp | str,
    ticket_status: TicketStatus | str,
    *,
    token_mint: str | None,
    transfer_status: TransferStatus | str | None = None,
    burn_reason: BurnReason | str | None = None,
    verified: bool = False,
    rotation: bool = False,
) -> Verdict:
    """May `op` be recorded for a ticket in this state?

    `transfer_status` is the status of the transfer row being executed (None when there
    is none); `burn_reason` is required for burns; `verified`: the ticket is a member of
    its event's group already; `rotation`: the metadata update is an authority rotation.
    """
    parsed_op = _parse(TxOp, op)
    if parsed_op is None:
        return Refusal(RefusalCode.UNKNOWN_OPERATION, f"unknown operation {op!r}")
    status = _parse(TicketStatus, ticket_status)
    if status is None:
        return Refusal(
            RefusalCode.UNKNOWN_TICKET_STATUS, f"unknown ticket status {ticket_status!r}"
        )
    match parsed_op:
        case TxOp.MINT:
            return check_mint(status, token_mint=token_mint)
        case TxOp.TRANSFER:
            return check_transfer(status, token_mint=token_mint, transfer_status=transfer_status)
        case TxOp.BURN:
            return check_burn(status, token_mint=token_mint, burn_reason=burn_reason)
        case TxOp.METADATA_UPDATE:
            return check_metadata_update(status, token_mint=token_mint, rotation=rotation)
        case TxOp.VERIFY:
            return check_verify(status, token_mint=token_mint, verified=verified)


def check_mint(status: TicketStatus, *, token_mint: str | None) -> Verdict:
    if token_mint is not None:
        return Refusal(RefusalCode.ALREADY_MINTED, f"ticket already has mint {token_mint}")
    if status not in MINTABLE:
        return _status_refusal(TxOp.MINT, status, MINTABLE)
    on_confirm = TicketStatus.ACTIVE if status is TicketStatus.ACTIVE else TicketStatus.MINTED
    return Allowed(TxOp.MINT, on_confirm)


def check_transfer(
    status: TicketStatus,
    *,
    token_mint: str | None,
    transfer_status: TransferStatus | str | None,
) -> Verdict:
    refusal = _check_movable(TxOp.TRANSFER, status, token_mint)
    if refusal is not None:
        return refusal
    if transfer_status is None:
        return Refusal(RefusalCode.TRANSFER_MISSING, "no transfer row for this ticket")
    parsed = _parse(TransferStatus, transfer_status)
    if parsed is None:
        return Refusal(
            RefusalCode.UNKNOWN_TRANSFER_STATUS, f"unknown transfer status {transfer_status!r}"
        )
    if parsed is not TransferStatus.ACCEPTED:
        return Refusal(
            RefusalCode.TRANSFER_NOT_ACCEPTED,
            f"transfer is {parsed.value}; only an accepted transfer can be executed",
        )
    return Allowed(TxOp.TRANSFER, TicketStatus.TRANSFERRED)


def check_burn(
    status: TicketStatus,
    *,
    token_mint: str | None,
    burn_reason: BurnReason | str | None,
) -> Verdict:
    if burn_reason is None:
        return Refusal(RefusalCode.BURN_REASON_MISSING, "a burn needs a reason: revoke or refund")
    reason = _parse(BurnReason, burn_reason)
    if reason is None:
        return Refusal(
            RefusalCode.UNKNOWN_BURN_REASON,
            f"unknown burn reason {burn_reason!r}; use revoke or refund",
        )
    refusal = _check_movable(TxOp.BURN, status, token_mint)
    if refusal is not None:
        return refusal
    return Allowed(TxOp.BURN, BURN_RESULT[reason])


def check_metadata_update(
    status: TicketStatus, *, token_mint: str | None, rotation: bool = False
) -> Verdict:
    """An authority rotation goes whatever the status: whatever NFT there is must not stay
    in the old key's hands (the chain says what it holds; a burned one holds nothing)."""
    if token_mint is None:
        return Refusal(
            RefusalCode.NOT_MINTED, "cannot update the metadata of a ticket with no NFT minted yet"
        )
    if status not in METADATA_UPDATABLE and not rotation:
        return _status_refusal(TxOp.METADATA_UPDATE, status, METADATA_UPDATABLE)
    return Allowed(TxOp.METADATA_UPDATE, status)  # the status stays what it is
def check_verify(status: TicketStatus, *, token_mint: str | None, verified: bool) -> Verdict:
    if token_mint is None:
        return Refusal(RefusalCode.NOT_MINTED, "cannot verify a ticket that has no NFT minted yet")
    if status in BURN_RESULT.values():
        return Refusal(RefusalCode.BURNED, f"the ticket's NFT was burned ({status.value})")
    if status not in VERIFIABLE:
        return _status_refusal(TxOp.VERIFY, status, VERIFIABLE)
    if verified:
        return Refusal(
            RefusalCode.ALREADY_VERIFIED, "the ticket is a member of its event's group already"
        )
    return Allowed(TxOp.VERIFY, status)


def ticket_status_on_confirm(
    op: TxOp,
    current: TicketStatus | str,
    *,
    burn_reason: BurnReason | str | None = None,
) -> TicketStatus | None:
    """The status to set when `op` confirms, given the ticket's status at that moment.

    None means leave the status as it is: the ticket moved on while the transaction
    was in flight (or the status is unknown), and a later state is not overwritten.
    """
    status = _parse(TicketStatus, current)
    if status is None:
        return None
    match op:
        case TxOp.MINT:
            if status is TicketStatus.SOLD:
                return TicketStatus.MINTED
            return None
        case TxOp.TRANSFER:
            if status in ON_CHAIN_MOVABLE:
                return TicketStatus.TRANSFERRED
            return None
        case TxOp.BURN:
            reason = _parse(BurnReason, burn_reason) if burn_reason is not None else None
            if reason is None or status not in ON_CHAIN_MOVABLE:
                return None
            return BURN_RESULT[reason]
        case TxOp.METADATA_UPDATE:
            return None
        case TxOp.VERIFY:
            return None  # membership changes no status


def _check_movable(op: TxOp, status: TicketStatus, token_mint: str | None) -> Refusal | None:
    if status not in ON_CHAIN_MOVABLE:
        return _status_refusal(op, status, ON_CHAIN_MOVABLE)
    if token_mint is None:
        return Refusal(
            RefusalCode.NOT_MINTED, f"cannot {op.value} a ticket that has no NFT minted yet"
        )
    return None


def _status_refusal(op: TxOp, status: TicketStatus, allowed: frozenset[TicketStatus]) -> Refusal:
    names = ", ".join(sorted(s.value for s in allowed))
    return Refusal(
        RefusalCode.STATUS_NOT_ALLOWED,
        f"cannot {op.value} a ticket that is {status.value} (allowed: {names})",
    )


def _parse(enum_type: type[_E], value: _E | str) -> _E | None:
    try:
        return enum_type(value)
    except ValueError:
        return None
