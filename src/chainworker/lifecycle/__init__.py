"""The transaction state machine as pure decisions over plain data (no I/O).

- `model`: the one vocabulary (operations, attempt and request statuses, commitments,
  reasons), the attempt snapshot and the policy;
- `observe`: a `getSignatureStatuses` entry as an `ObservedStatus`, errors as stable codes;
- `decide`: `next_action` for one live attempt, and the action types;
- `transitions`: how an attempt's fields change when an action is carried out (what the
  confirmation round and settling write);
- `ticket_rules`: which ticket states allow which operation, and what confirmation sets;
- `metadata`: a metadata update's change, its rules, and the order of its steps;
- `outcome`: the outbox event of each end of a request, and the reconcile verdicts.

Everything here is what production runs: the pipeline calls these functions, so the
property tests test the code that decides.
"""

from chainworker.lifecycle.decide import (
    Action,
    Confirm,
    Expire,
    Fail,
    MarkConfirming,
    Rebroadcast,
    RecheckExpiry,
    Replace,
    Wait,
    WaitReason,
    next_action,
)
from chainworker.lifecycle.model import (
    Commitment,
    ObservedStatus,
    Policy,
    TxOp,
    TxSnapshot,
    TxStatus,
)

__all__ = [
    "Action",
    "Commitment",
    "Confirm",
    "Expire",
    "Fail",
    "MarkConfirming",
    "ObservedStatus",
    "Policy",
    "Rebroadcast",
    "RecheckExpiry",
    "Replace",
    "TxOp",
    "TxSnapshot",
    "TxStatus",
    "Wait",
    "WaitReason",
    "next_action",
]
