"""Decoding JSON-RPC answers: good shapes become views, garbage becomes ChainError."""

from __future__ import annotations

import base64
import json

import pytest
from solders.pubkey import Pubkey

from chainworker.chain import views
from chainworker.chain.endpoints import decode_answer, endpoint_label
from chainworker.chain.errors import ChainError


def test_endpoint_labels_hide_paths_and_queries() -> None:
    label = endpoint_label(1, "https://rpc.example.com/v2/SECRETKEY?api-key=SECRET2")
    assert label == "1:rpc.example.com"
    assert endpoint_label(0, "http://127.0.0.1:8899") == "0:127.0.0.1:8899"


@pytest.mark.parametrize(
    ("text", "kind", "code"),
    [
        ("<html>502 Bad Gateway</html>", "bad_response", None),
        ("[1, 2]", "bad_response", None),
        ('{"jsonrpc": "2.0", "id": 1}', "bad_response", None),
        ('{"jsonrpc": "2.0", "id": 1, "error": "nope"}', "bad_response", None),
        ('{"jsonrpc": "2.0", "id": 1, "error": {"code": -32601, "message": "no"}}', "rpc", -32601),
        (
            '{"jsonrpc":"2.0","id":1,"error":{"code":-32005,"message":"behind"}}',
            "unavailable",
            -32005,
        ),
    ],
)
def test_decode_answer_errors(text: str, kind: str, code: int | None) -> None:
    with pytest.raises(ChainError) as raised:
        decode_answer(text, "0:host")
    assert raised.value.kind == kind
    assert raised.value.code == code
    assert raised.value.endpoint == "0:host"


def test_decode_answer_returns_the_result() -> None:
    assert decode_answer('{"jsonrpc":"2.0","id":1,"result":null}', "0:h") is None
    assert decode_answer('{"jsonrpc":"2.0","id":1,"result":{"value":5}}', "0:h") == {"value": 5}


def test_signature_statuses_view() -> None:
    result = {
        "context": {"slot": 9},
        "value": [
            None,
            {
                "slot": 7,
                "confirmations": None,
                "err": {"InstructionError": [3, {"Custom": 1}]},
                "status": {"Err": {"InstructionError": [3, {"Custom": 1}]}},
                "confirmationStatus": "finalized",
            },
            {"slot": 8, "confirmations": 1, "err": None, "confirmationStatus": "processed"},
        ],
    }
    page = views.signature_statuses(result, 3)
    assert page.context_slot == 9
    unknown, failed, seen = page.statuses
    assert unknown is None
    assert failed is not None and failed.err is not None
    assert (failed.slot, failed.confirmations, failed.confirmation_status) == (7, None, "finalized")
    assert failed.err.code == "InstructionError:3:Custom:1"
    assert (failed.err.instruction_index, failed.err.custom_code) == (3, 1)
    assert seen == views.SignatureStatusView(8, 1, None, "processed")


@pytest.mark.parametrize(
    "result",
    [
        None,
        {"value": None},
        {"value": [None]},  # wrong length
        {"value": [{"slot": "7"}, None]},
        {"value": [{"slot": 7, "confirmationStatus": "rooted"}, None]},
        {"value": [{"slot": 7, "err": 5}, None]},
        # numbers no cluster has, and a status from after the answer's own slot
        {"context": {"slot": 2**63}, "value": [None, None]},
        {"context": {"slot": 9}, "value": [{"slot": 2**63}, None]},
        {"context": {"slot": 9}, "value": [{"slot": -1}, None]},
        {"context": {"slot": 9}, "value": [{"slot": 10}, None]},
        {"context": {"slot": 9}, "value": [{"slot": 7, "confirmations": 10**30}, None]},
        {"context": {"slot": "9"}, "value": [None, None]},
        {"value": [None, None]},  # no context
        {"context": {"slot": 9}, "value": [[7], None]},
    ],
)
def test_ill_shaped_statuses_raise(result: object) -> None:
    with pytest.raises((ValueError, TypeError, KeyError)):
        views.signature_statuses(result, 2)


def test_account_view_decodes_base64() -> None:
    owner = Pubkey.new_unique()
    data = b"\x01\x02\x03"
    result = {
        "context": {"slot": 1},
        "value": {
            "data": [base64.b64encode(data).decode(), "base64"],
            "owner": str(owner),
            "lamports": 10,
            "executable": False,
            "rentEpoch": 0,
        },
    }
    assert views.account(result) == views.AccountView(owner, 10, data)
    assert views.account({"context": {"slot": 1}, "value": None}) is None
    broken = json.loads(json.dumps(result))
    broken["value"]["data"] = ["!!!", "base64"]
    with pytest.raises(ValueError):
        views.account(broken)


def test_multiple_accounts_view_keeps_the_order_and_the_gaps() -> None:
    owner = Pubkey.new_unique()
    found = {
        "data": [base64.b64encode(b"\x07").decode(), "base64"], "owner": str(owner),
        "lamports": 2_074_080, "executable": False, "rentEpoch": 0,
    }
    result = {"context": {"slot": 5}, "value": [None, found]}
    assert views.accounts(result, 2) == [None, views.AccountView(owner, 2_074_080, b"\x07")]
    with pytest.raises(ValueError, match="expected 3 accounts"):
        views.accounts(result, 3)  # an answer for other addresses than asked
    huge = json.loads(json.dumps(result))
    huge["value"][1]["lamports"] = 2**63
    with pytest.raises(ValueError):
        views.accounts(huge, 2)
