"""Plain data the lifecycle decisions work on: operations, statuses, commitments, policy.

Nothing here performs I/O. The worker maps `pending_transactions` rows and RPC
answers onto these types, asks `decide.next_action`, and carries out the answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum, StrEnum


class TxOp(StrEnum):
    """What a chain transaction does to a ticket NFT (`pending_transactions.tx_type`)."""

    MINT = "mint"
    TRANSFER = "transfer"
    BURN = "burn"
    METADATA_UPDATE = "metadata_update"  # the NFT's metadata, as its update authority
    VERIFY = "verify"  # the ticket's mint joins its event's group (TokenGroupMember)


class TxStatus(StrEnum):
    """`pending_transactions.status`, the seed's six values."""

    PENDING = "pending"
    CONFIRMING = "confirming"
    CONFIRMED = "confirmed"
    FAILED = "failed"
    EXPIRED = "expired"
    REPLACED = "replaced"

    @property
    def is_live(self) -> bool:
        """Still waiting for the chain: the confirmation loop owns it."""
        return self in LIVE_STATUSES

    @property
    def is_outcome(self) -> bool:
        """Final for the whole request (replaced is final for the attempt only)."""
        return self in OUTCOME_STATUSES


LIVE_STATUSES: frozenset[TxStatus] = frozenset({TxStatus.PENDING, TxStatus.CONFIRMING})
OUTCOME_STATUSES: frozenset[TxStatus] = frozenset(
    {TxStatus.CONFIRMED, TxStatus.FAILED, TxStatus.EXPIRED}
)


class RequestStatus(StrEnum):
    """`chain_requests.status`: a request is live while queued or submitted."""

    QUEUED = "queued"  # recorded; its job records an attempt
    SUBMITTED = "submitted"  # an attempt is live
    CONFIRMED = "confirmed"
    FAILED = "failed"
    EXPIRED = "expired"
    REFUSED = "refused"  # the ticket's state (or a limit) did not allow it: nothing was sent
    ABANDONED = "abandoned"  # an operator gave it up

    @property
    def is_live(self) -> bool:
        return self in (RequestStatus.QUEUED, RequestStatus.SUBMITTED)


class BurnReason(StrEnum):
    """Why a ticket's NFT is burned; the ticket's status once the burn confirms follows."""

    REVOKE = "revoke"
    REFUND = "refund"


class QuarantineReason(StrEnum):
    """Why a row was set aside (`chainworker_quarantined_total`'s reason; the row's
    last_error has the details)."""

    BAD_ROW = "bad_row"  # the row itself does not make sense (shape, references, values)
    BAD_PAYLOAD = "bad_payload"  # an outbox payload over the limits or of the wrong shape
    NOT_FOUND = "not_found"  # what it names never appeared, after every retry
    UNHANDLED = "unhandled"  # applying it failed, alone, for a reason of its own


class FailureReason(StrEnum):
    """Why a transaction failed on chain, bounded (`chainworker_tx_failed_total`'s reason).

    Derived from the stable error code of `observe.describe_error` by `observe.failure_reason`.
    """

    ALREADY_IN_USE = "already_in_use"  # a second mint: the mint account exists
    INSUFFICIENT_FUNDS = "insufficient_funds"  # a replayed transfer or burn: nothing to move
    INSUFFICIENT_LAMPORTS = "insufficient_lamports"  # the payer cannot pay fee or rent
    BLOCKHASH_NOT_FOUND = "blockhash_not_found"
    SIGNATURE_INVALID = "signature_invalid"
    COMPUTE_EXCEEDED = "compute_exceeded"
    ACCOUNT_NOT_FOUND = "account_not_found"
    INVALID_ACCOUNT = "invalid_account"
    PROGRAM_ERROR = "program_error"  # any other instruction error
    OTHER = "other"


class DeadLetterReason(StrEnum):
    """Why a job payload was refused (`chainworker_jobs_dead_lettered_total`'s reason)."""

    OVERSIZED = "oversized"
    NOT_JSON = "not_json"
    BAD_SHAPE = "bad_shape"
    UNKNOWN_FUNCTION = "unknown_function"
    BAD_ARGS = "bad_args"


class SpendPeriod(StrEnum):
    """The periods a tenant's chain spending limit counts over (`chain_spending_limits`)."""

    DAILY = "daily"
    WEEKLY = "weekly"
    MONTHLY = "monthly"


class Commitment(Enum):
    """Solana commitment levels, ordered processed < confirmed < finalized.

    A plain Enum, not a StrEnum: string comparison would order them alphabetically.
    """

    PROCESSED = "processed"
    CONFIRMED = "confirmed"
    FINALIZED = "finalized"

    @property
    def rank(self) -> int:
        return _COMMITMENT_RANK[self]

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Commitment):
            return NotImplemented
        return self.rank < other.rank

    def __le__(self, other: object) -> bool:
        if not isinstance(other, Commitment):
            return NotImplemented
        return self.rank <= other.rank

    def __gt__(self, other: object) -> bool:
        if not isinstance(other, Commitment):
            return NotImplemented
        return self.rank > other.rank

    def __ge__(self, other: object) -> bool:
        if not isinstance(other, Commitment):
            return NotImplemented
        return self.rank >= other.rank


_COMMITMENT_RANK: dict[Commitment, int] = {
    Commitment.PROCESSED: 0,
    Commitment.CONFIRMED: 1,
    Commitment.FINALIZED: 2,
}


@dataclass(frozen=True, slots=True)
class ObservedStatus:
    """One non-null entry of `getSignatureStatuses`: the signature is known to the cluster.

    A null entry (signature unknown) is represented by `None` where an
    `ObservedStatus | None` is expected. `err_code`/`err_message` are set when the
    transaction executed with an error (it still landed and paid its fee).
    """

    slot: int
    confirmation_status: Commitment
    err_code: str | None = None
    err_message: str | None = None

    @property
    def failed(self) -> bool:
        return self.err_code is not None


@dataclass(frozen=True, slots=True)
class TxSnapshot:
    """The fields of one `pending_transactions` row (one attempt) that decisions need.

    `attempt` counts from 1. Times are seconds on one clock (e.g. epoch seconds);
    `last_sent_at` is None when the signed bytes were recorded but never sent (a crash
    between record and send). `expiry_check_pending` records that a status read already
    found the signature unknown with the block height past `last_valid_block_height`;
    expiry needs one more unknown read after that.
    """

    status: TxStatus
    attempt: int
    last_valid_block_height: int
    last_sent_at: float | None = None
    last_rebroadcast_at: float | None = None
    expiry_check_pending: bool = False

    def __post_init__(self) -> None:
        if self.attempt < 1:
            raise ValueError(f"attempt counts from 1, got {self.attempt}")

    @property
    def last_broadcast_at(self) -> float | None:
        """When the bytes last went out, first send or rebroadcast."""
        times = [t for t in (self.last_sent_at, self.last_rebroadcast_at) if t is not None]
        return max(times) if times else None


@dataclass(frozen=True, slots=True)
class Policy:
    """How persistent and how strict the lifecycle is.

    `max_retries` counts new attempts after the first, so a request makes at most
    `max_retries + 1` attempts. `target` is the commitment at which a transaction
    counts as confirmed (and at which an on-chain error counts as final).
    """

    max_retries: int = 3
    target: Commitment = Commitment.CONFIRMED
    rebroadcast_interval_seconds: float = 2.0

    def __post_init__(self) -> None:
        if self.max_retries < 0:
            raise ValueError("max_retries must be >= 0")
        if self.rebroadcast_interval_seconds <= 0:
            raise ValueError("rebroadcast_interval_seconds must be > 0")

    @property
    def max_attempts(self) -> int:
        return self.max_retries + 1

    def retries_left(self, attempt: int) -> bool:
        """May another attempt follow attempt `attempt`? Never more than `max_attempts`."""
        return attempt < self.max_attempts
