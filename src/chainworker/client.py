"""Typed calls to chainworker's HTTP API, for the ticket service. Depends on httpx alone (and
lifecycle.model's vocabulary, plain enums).

One Idempotency-Key per logical operation, reused on every retry of it, so a retried
call can never record twice. Retries (with exponential backoff and jitter) cover
connection errors, 409 "still in progress" (honouring Retry-After), 429 and 5xx; other
errors raise `ApiError` with the problem details.

A service that shares chainworker's database can skip HTTP: `chainworker.direct`.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any
from uuid import UUID

import httpx

from chainworker.lifecycle.model import BurnReason, RequestStatus, TxOp

RETRY_STATUSES = frozenset({409, 429, 500, 502, 503, 504})
IN_PROGRESS_TYPE = "urn:chainworker:problem:idempotency-in-progress"


class ApiError(Exception):
    """The API refused the call; `problem` is its RFC 9457 body."""

    def __init__(self, status: int, problem: dict[str, Any]) -> None:
        super().__init__(f"{status} {problem.get('type', '')}: {problem.get('detail', '')}")
        self.status = status
        self.problem = problem

    @property
    def type(self) -> str:
        return str(self.problem.get("type", ""))

    @property
    def code(self) -> str | None:
        code = self.problem.get("code")
        return str(code) if code is not None else None


@dataclass(frozen=True, slots=True)
class AcceptedRequest:
    request_id: UUID
    ticket_id: UUID
    operation: TxOp
    status: RequestStatus
    created: bool
    status_url: str

    @classmethod
    def of(cls, body: dict[str, Any]) -> AcceptedRequest:
        return cls(
            request_id=UUID(body["request_id"]),
            ticket_id=UUID(body["ticket_id"]),
            operation=TxOp(body["operation"]),
            status=RequestStatus(body["status"]),
            created=body["created"],
            status_url=body["status_url"],
        )


class ChainworkerClient:
    """The HTTP API, with retries and per-operation idempotency keys."""

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        max_attempts: int = 5,
        backoff_seconds: float = 0.2,
        max_backoff_seconds: float = 5.0,
        timeout_seconds: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._http = httpx.AsyncClient(
            base_url=base_url,
            headers={"Authorization": f"Bearer {token}"},
            timeout=timeout_seconds,
            transport=transport,
        )
        self._max_attempts = max(1, max_attempts)
        self._backoff = backoff_seconds
        self._max_backoff = max_backoff_seconds

    async def __aenter__(self) -> ChainworkerClient:
        return self

    async def __aexit__(
        self, _t: type[BaseException] | None, _e: BaseException | None, _tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    # --- operations --------------------------------------------------------

    async def mint(self, ticket_id: UUID, *, idempotency_key: str | None = None) -> AcceptedRequest:
        body = await self._post(f"/v1/tickets/{ticket_id}/mint", None, idempotency_key)
        return AcceptedRequest.of(body)

    async def burn(
        self, ticket_id: UUID, reason: BurnReason, *, idempotency_key: str | None = None
    ) -> AcceptedRequest:
        body = await self._post(
            f"/v1/tickets/{ticket_id}/burn", {"reason": reason}, idempotency_key
        )
        return AcceptedRequest.of(body)

    async def update_metadata(
        self,
        ticket_id: UUID,
        fields: Mapping[str, str] | None = None,
        remove: Sequence[str] = (),
        *,
        idempotency_key: str | None = None,
    ) -> AcceptedRequest:
        """Set fields of the NFT's metadata (name, uri, custom keys) and remove custom keys.

        Each call is an update of its own; updates of one ticket run in the order accepted.
        """
        body = {"fields": dict(fields or {}), "remove": list(remove)}
        response = await self._post(f"/v1/tickets/{ticket_id}/metadata", body, idempotency_key)
        return AcceptedRequest.of(response)

    async def execute_transfer(
        self, transfer_id: UUID, *, idempotency_key: str | None = None
    ) -> AcceptedRequest:
        body = await self._post(f"/v1/transfers/{transfer_id}/execute", None, idempotency_key)
        return AcceptedRequest.of(body)

    async def register_wallet(
        self, user_id: UUID, address: str, *, idempotency_key: str | None = None
    ) -> dict[str, Any]:
        return await self._post(
            "/v1/wallets", {"user_id": str(user_id), "address": address}, idempotency_key
        )

    # --- reads ---------------------------------------------------------------

    async def request_status(self, request_id: UUID) -> dict[str, Any]:
        return await self._get(f"/v1/requests/{request_id}")

    async def transaction_status(self, signature: str) -> dict[str, Any]:
        return await self._get(f"/v1/transactions/{signature}")

    async def ticket_chain(self, ticket_id: UUID) -> dict[str, Any]:
        return await self._get(f"/v1/tickets/{ticket_id}/chain")

    async def wait_for_request(
        self, request_id: UUID, *, timeout_seconds: float = 120.0, poll_seconds: float = 0.5
    ) -> dict[str, Any]:
        """Poll until the request is final (confirmed, failed, expired, refused, abandoned)."""
        deadline = asyncio.get_running_loop().time() + timeout_seconds
        while True:
            status = await self.request_status(request_id)
            if not RequestStatus(status["status"]).is_live:
                return status
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(f"request {request_id} still {status['status']}")
            await asyncio.sleep(poll_seconds)

    # --- transport -------------------------------------------------------------

    def _delay(self, attempt: int, response: httpx.Response | None) -> float:
        if response is not None and "retry-after" in response.headers:
            try:
                return min(self._max_backoff, float(response.headers["retry-after"]))
            except ValueError:
                pass
        ceiling = min(self._max_backoff, self._backoff * 2**attempt)
        return ceiling / 2 + random.uniform(0, ceiling / 2)

    async def _send(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        for attempt in range(self._max_attempts):
            last = attempt == self._max_attempts - 1
            try:
                response = await self._http.request(method, path, **kwargs)
            except (httpx.TransportError, httpx.TimeoutException):
                if last:
                    raise
                await asyncio.sleep(self._delay(attempt, None))
                continue
            if response.is_success:
                body: dict[str, Any] = response.json()
                return body
            retryable = response.status_code in RETRY_STATUSES and (
                response.status_code != 409 or _problem(response).get("type") == IN_PROGRESS_TYPE
            )
            if not retryable or last:
                raise ApiError(response.status_code, _problem(response))
            await asyncio.sleep(self._delay(attempt, response))
        raise AssertionError("unreachable: the last attempt returns or raises")

    async def _get(self, path: str) -> dict[str, Any]:
        return await self._send("GET", path)

    async def _post(
        self, path: str, body: dict[str, Any] | None, idempotency_key: str | None
    ) -> dict[str, Any]:
        # One key for this logical operation, the same on every retry below.
        key = idempotency_key or str(uuid.uuid4())
        return await self._send("POST", path, json=body, headers={"Idempotency-Key": key})


def _problem(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {"status": response.status_code, "detail": response.text[:200]}
    return body if isinstance(body, dict) else {"status": response.status_code}

