"""Status entries as the RPC returns them (decoded by solders) become ObservedStatus."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st
from solders.rpc.responses import GetSignatureStatusesResp

from chainworker.lifecycle.model import Commitment, FailureReason, ObservedStatus
from chainworker.lifecycle.observe import (
    custom_program_error,
    describe_error,
    failure_reason,
    observed_from_rpc,
)

RESPONSE = {
    "jsonrpc": "2.0",
    "id": 1,
    "result": {
        "context": {"slot": 82},
        "value": [
            {
                "slot": 72,
                "confirmations": 10,
                "err": {"InstructionError": [2, {"Custom": 0}]},
                "status": {"Err": {"InstructionError": [2, {"Custom": 0}]}},
                "confirmationStatus": "confirmed",
            },
            None,
            {
                "slot": 5,
                "confirmations": None,
                "err": None,
                "status": {"Ok": None},
                "confirmationStatus": "finalized",
            },
            {
                "slot": 6,
                "confirmations": None,
                "err": "AccountInUse",
                "status": {"Err": "AccountInUse"},
                "confirmationStatus": None,
            },
            {
                "slot": 7,
                "confirmations": 0,
                "err": {"InstructionError": [0, "InvalidAccountData"]},
                "status": {"Err": {"InstructionError": [0, "InvalidAccountData"]}},
                "confirmationStatus": "processed",
            },
        ],
    },
}


def entries() -> list[dict[str, object] | None]:
    # Round-trip through solders, the way chain/ receives them.
    parsed = GetSignatureStatusesResp.from_json(json.dumps(RESPONSE))
    assert isinstance(parsed, GetSignatureStatusesResp)
    return [None if s is None else json.loads(s.to_json()) for s in parsed.value]


def test_statuses_from_rpc_entries() -> None:
    observed = [observed_from_rpc(e) for e in entries()]
    assert observed == [
        ObservedStatus(
            72,
            Commitment.CONFIRMED,
            "InstructionError:2:Custom:0",
            "instruction 2 failed: custom program error: 0x0",
        ),
        None,
        ObservedStatus(5, Commitment.FINALIZED),
        ObservedStatus(6, Commitment.FINALIZED, "AccountInUse", "AccountInUse"),
        ObservedStatus(
            7,
            Commitment.PROCESSED,
            "InstructionError:0:InvalidAccountData",
            "instruction 0 failed: InvalidAccountData",
        ),
    ]


def test_custom_program_error_numbers() -> None:
    assert custom_program_error("InstructionError:2:Custom:0") == 0
    assert custom_program_error("InstructionError:3:Custom:1") == 1
    assert custom_program_error("InstructionError:0:InvalidAccountData") is None
    assert custom_program_error("AccountInUse") is None


def test_other_error_shapes_keep_their_detail() -> None:
    code, message = describe_error({"InsufficientFundsForRent": {"account_index": 3}})
    assert code == "InsufficientFundsForRent"
    assert "account_index" in message and "3" in message
    code, message = describe_error({"InstructionError": [1, {"BorshIoError": "bad"}]})
    assert code == "InstructionError:1:BorshIoError" and "bad" in message
    assert describe_error(["odd"])[0] == "Unrecognized"


def test_missing_confirmation_status_claims_no_more_than_seen() -> None:
    assert observed_from_rpc({"slot": 1, "confirmations": 3}) == ObservedStatus(
        1, Commitment.PROCESSED
    )


@pytest.mark.parametrize(
    ("err", "reason"),
    [
        ({"InstructionError": [0, {"Custom": 0}]}, FailureReason.ALREADY_IN_USE),
        ({"InstructionError": [2, {"Custom": 1}]}, FailureReason.INSUFFICIENT_FUNDS),
        ({"InstructionError": [1, {"Custom": 17}]}, FailureReason.PROGRAM_ERROR),
        ({"InstructionError": [3, "InvalidAccountData"]}, FailureReason.INVALID_ACCOUNT),
        ({"InstructionError": [0, "IncorrectProgramId"]}, FailureReason.INVALID_ACCOUNT),
        ({"InstructionError": [0, "AccountAlreadyInitialized"]}, FailureReason.ALREADY_IN_USE),
        ({"InstructionError": [4, "ComputationalBudgetExceeded"]}, FailureReason.COMPUTE_EXCEEDED),
        ({"InstructionError": [0, {"BorshIoError": "x"}]}, FailureReason.PROGRAM_ERROR),
        ("InsufficientFundsForFee", FailureReason.INSUFFICIENT_LAMPORTS),
        ({"InsufficientFundsForRent": {"account_index": 1}}, FailureReason.INSUFFICIENT_LAMPORTS),
        ("BlockhashNotFound", FailureReason.BLOCKHASH_NOT_FOUND),
        ("SignatureFailure", FailureReason.SIGNATURE_INVALID),
        ("AccountNotFound", FailureReason.ACCOUNT_NOT_FOUND),
        ("SomethingNobodyHasSeen", FailureReason.OTHER),
        ([1, 2, 3], FailureReason.OTHER),
    ],
)
def test_each_on_chain_error_has_its_bounded_reason(err: object, reason: FailureReason) -> None:
    code, _ = describe_error(err)
    assert failure_reason(code) is reason


_ERRORS = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=20), inner, max_size=2)
    ),
    max_leaves=8,
)


@given(_ERRORS)
def test_any_error_an_rpc_could_send_maps_to_a_reason(err: object) -> None:
    code, _ = describe_error(err)
    assert isinstance(failure_reason(code), FailureReason)
