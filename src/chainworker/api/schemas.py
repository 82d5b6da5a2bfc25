"""Request and response bodies of the API (the OpenAPI schema is generated from these)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, model_validator

from chainworker.db.requests import RequestRow
from chainworker.db.transactions import AttemptRow
from chainworker.lifecycle import model
from chainworker.lifecycle.metadata import MAX_CHANGES, MetadataChange, check_change

# Printable text without control characters: C0 (Postgres text refuses NUL; newlines would
# forge log lines), DEL and C1 (U+0085 is a newline too).
_PLAIN_TEXT = r"^[^\x00-\x1f\x7f-\x9f]*$"


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class BurnBody(_Body):
    reason: model.BurnReason = Field(
        description="revoke: the ticket is withdrawn; refund: paid back."
    )


class MetadataBody(_Body):
    fields: dict[str, str] = Field(
        default_factory=dict,
        max_length=MAX_CHANGES,
        description="Fields to set: name, uri, or a custom key (letters, digits, _ . : -, at "
        "most 32); values are text (name at most 32 bytes, uri 117, others 512). symbol, "
        "ticket_id and event_id are refused.",
        examples=[{"seat": "A-7", "uri": "https://tickets.example/moved/1.json"}],
    )
    remove: list[str] = Field(
        default_factory=list, max_length=MAX_CHANGES, description="Custom keys to remove."
    )

    @model_validator(mode="after")
    def _follows_the_rules(self) -> MetadataBody:
        check_change(self.fields, self.remove)  # a ValueError is a 422 with its reason
        return self

    def change(self) -> MetadataChange:
        return check_change(self.fields, self.remove)


class WalletBody(_Body):
    user_id: UUID
    address: str = Field(
        min_length=32,
        max_length=44,
        description="A base58 ed25519 public key (32 bytes).",
        examples=["9xQeWvG816bUx9EPjHmaT23yvVM2ZWbrrpZb9PusVFin"],
    )


class RevocationBody(_Body):
    reason: model.BurnReason = model.BurnReason.REVOKE
    comment: str | None = Field(default=None, max_length=500, pattern=_PLAIN_TEXT)


class VoteBody(_Body):
    comment: str | None = Field(default=None, max_length=500, pattern=_PLAIN_TEXT)


class Accepted(BaseModel):
    """A recorded request: the work happens in the workers; poll `status_url`."""

    request_id: UUID
    ticket_id: UUID
    operation: model.TxOp
    status: model.RequestStatus
    created: bool = Field(description="False when a live request already existed and is returned.")
    status_url: str


class Attempt(BaseModel):
    signature: str
    status: model.TxStatus
    attempt: int
    slot: int | None
    error_code: str | None
    error_message: str | None
    submitted_at: datetime
    confirmed_at: datetime | None

    @classmethod
    def of(cls, row: AttemptRow) -> Attempt:
        return cls(
            signature=row.tx_signature,
            status=row.status,
            attempt=row.attempt,
            slot=row.slot,
            error_code=row.error_code,
            error_message=row.error_message,
            submitted_at=row.submitted_at,
            confirmed_at=row.confirmed_at,
        )


class RequestStatus(BaseModel):
    request_id: UUID
    ticket_id: UUID
    transfer_id: UUID | None
    operation: model.TxOp
    reason: str | None
    source: str
    status: model.RequestStatus
    attempts: int
    token_mint: str | None
    signature: str | None
    slot: int | None
    error_code: str | None
    error_message: str | None
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None
    transactions: list[Attempt]
    changes: dict[str, Any] | None = Field(
        default=None, description='A metadata update\'s change: {"fields": {...}, "remove": [...]}.'
    )

    @classmethod
    def of(cls, row: RequestRow, attempts: list[AttemptRow]) -> RequestStatus:
        landed = next((a for a in attempts if a.slot is not None), None)
        return cls(
            request_id=row.id,
            ticket_id=row.ticket_id,
            transfer_id=row.transfer_id,
            operation=row.operation,
            reason=row.reason,
            source=row.source,
            status=row.status,
            attempts=row.attempts,
            token_mint=row.token_mint,
            signature=row.tx_signature,
            slot=landed.slot if landed else None,
            error_code=row.outcome_code,
            error_message=row.outcome_message,
            created_at=row.created_at,
            updated_at=row.updated_at,
            completed_at=row.completed_at,
            transactions=[Attempt.of(a) for a in attempts],
            changes=row.changes.as_json() if row.changes is not None else None,
        )


class TransactionStatus(Attempt):
    request_id: UUID | None
    ticket_id: UUID
    # The seed's tx_type: chainworker's operations, or another the ticket service recorded.
    operation: str
    blockhash: str
    last_valid_block_height: int

    @classmethod
    def of_row(cls, row: AttemptRow) -> TransactionStatus:
        return cls(
            **Attempt.of(row).model_dump(),
            request_id=row.request_id,
            ticket_id=row.ticket_id,
            operation=row.tx_type,
            blockhash=row.blockhash,
            last_valid_block_height=row.last_valid_block_height,
        )


class StateChange(BaseModel):
    previous_status: str | None
    new_status: str
    actor_type: str
    reason: str | None
    source: str | None
    created_at: datetime


class OnChainHolder(BaseModel):
    owner: str | None = Field(description="Owner of the token account holding the NFT.")
    amount: int
    error: str | None = Field(default=None, description="Set when the chain could not be read.")


class Membership(BaseModel):
    """The ticket's place in its event's collection (a Token-2022 group), read from the chain."""

    group: str | None = Field(description="The event's group mint; null while it has none.")
    member_group: str | None = Field(description="The group the ticket's mint is a member of.")
    member_number: int | None
    verified: bool = Field(description="The mint is a member of the platform's group for "
                                       "the ticket's event.")
    error: str | None = Field(default=None, description="Set when the chain could not be read.")


class TicketChain(BaseModel):
    ticket_id: UUID
    event_id: UUID
    status: str
    token_mint: str | None
    holder: OnChainHolder | None = Field(description="Read from the chain; null before the mint.")
    mint_closed: bool | None = Field(
        default=None,
        description="Read from the chain: true once a burn closed the mint account (its rent "
        "went back to the payer); null before the mint or when the chain could not be read.",
    )
    rent_reclaimed_lamports: int = Field(
        default=0,
        description="Lamports of rent the ticket's confirmed burn gave back by closing its "
        "accounts (the mint, and a custodial holder's token account), credited to the tenant.",
    )
    membership: Membership | None = Field(
        default=None, description="Read from the chain; null before the mint."
    )
    live_transaction: Attempt | None
    requests: list[RequestStatus]
    history: list[StateChange]


class Wallet(BaseModel):
    user_id: UUID
    address: str


class Revocation(BaseModel):
    revocation_id: UUID
    event_id: UUID
    reason: model.BurnReason
    status: Literal["pending", "approved", "rejected", "expired", "executed"]
    required_approvals: int
    current_approvals: int
    requested_by: UUID
    approvers: list[UUID]
    expires_at: datetime
    executed_at: datetime | None
    burn_request_ids: list[UUID] = Field(description="One recorded burn per minted ticket.")


class Health(BaseModel):
    status: Literal["ok", "unavailable"]
    checks: dict[str, str] = Field(default_factory=dict)
