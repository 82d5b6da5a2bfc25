"""OpenAPI links: where the ids in an answer lead (a request's status, its transaction, ...).

A route declares them with its responses, e.g. `responses={**ERRORS, **on(202, ...)}`;
clients and stateful tests follow them from one call to the next.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

REQUEST = "/v1/requests/{request_id}"
TICKET_CHAIN = "/v1/tickets/{ticket_id}/chain"
TRANSACTION = "/v1/transactions/{signature}"
REVOCATION = "/v1/events/{event_id}/revocations/{revocation_id}"
APPROVALS = REVOCATION + "/approvals"
REJECTIONS = REVOCATION + "/rejections"


def to(path: str, method: str, description: str, **parameters: str) -> dict[str, Any]:
    """A link to `method path`, each parameter a runtime expression such as
    `$response.body#/request_id`."""
    # A JSON pointer to the path item, written as a URI fragment: ~1 for "/", %7B for "{".
    pointer = quote(path.replace("~", "~0").replace("/", "~1"), safe="~")
    return {
        "operationRef": f"#/paths/{pointer}/{method}",
        "parameters": parameters,
        "description": description,
    }


def on(status: int, **links: dict[str, Any]) -> dict[int | str, dict[str, Any]]:
    """The `responses` entry that gives the answer with `status` these links."""
    return {status: {"links": links}}


def request_links(status: int) -> dict[int | str, dict[str, Any]]:
    """An answer naming a recorded request: its status, and its ticket's chain view."""
    return on(
        status,
        GetRequest=to(REQUEST, "get", "The request's status and attempts.",
                      request_id="$response.body#/request_id"),
        GetTicketChain=to(TICKET_CHAIN, "get", "The ticket on chain.",
                          ticket_id="$response.body#/ticket_id"),
    )


def revocation_links(status: int) -> dict[int | str, dict[str, Any]]:
    """An answer naming a revocation: read it, vote on it, follow its first burn."""
    ids = {"event_id": "$response.body#/event_id",
           "revocation_id": "$response.body#/revocation_id"}
    return on(
        status,
        GetRevocation=to(REVOCATION, "get", "The revocation's state.", **ids),
        ApproveRevocation=to(APPROVALS, "post", "Approve it.", **ids),
        RejectRevocation=to(REJECTIONS, "post", "Reject it.", **ids),
        GetBurnRequest=to(REQUEST, "get", "The first burn it recorded, once executed.",
                          request_id="$response.body#/burn_request_ids/0"),
    )
