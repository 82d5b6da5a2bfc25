"""RFC 9457 problem details: one stable `type` URI per error kind, and the handlers.

Every error the API returns is `application/problem+json`. Clients branch on `type`,
never on `title` or `detail` (those are for people).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import asyncpg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from redis.exceptions import RedisError
from starlette.exceptions import HTTPException as StarletteHTTPException

from chainworker.obs import logs

PROBLEM_MEDIA_TYPE = "application/problem+json"
TYPE_PREFIX = "urn:chainworker:problem:"

# kind -> (status, title). The kind is the stable part of the type URI.
KINDS: dict[str, tuple[int, str]] = {
    "bad-request": (400, "The request could not be read"),
    "unauthorized": (401, "Missing or invalid bearer token"),
    "forbidden": (403, "This token may not do that"),
    "not-found": (404, "No such resource"),
    "method-not-allowed": (405, "Method not allowed"),
    "conflict": (409, "The resource's state does not allow this"),
    "idempotency-in-progress": (409, "A request with this Idempotency-Key is still running"),
    "validation-error": (422, "The request is not valid"),
    "idempotency-key-reused": (422, "This Idempotency-Key was used with a different request"),
    "payload-too-large": (413, "The request body is too large"),
    "unsupported-media-type": (415, "Unsupported media type"),
    "service-unavailable": (503, "A service the API depends on is unavailable"),
    "internal-error": (500, "Internal error"),
}

log = logs.get_logger(__name__)


def problem_type(kind: str) -> str:
    return TYPE_PREFIX + kind


class FieldError(BaseModel):
    field: str = Field(
        description="Where the bad value is, e.g. body.reason or header.Idempotency-Key."
    )
    message: str


class ProblemDetails(BaseModel):
    """The body of every error response."""

    type: str = Field(
        description="Stable URI naming the error kind, e.g. urn:chainworker:problem:not-found."
    )
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None
    code: str | None = Field(default=None, description="A finer, stable reason within the kind.")
    errors: list[FieldError] | None = Field(default=None, description="Validation errors.")


class Problem(Exception):
    """Raise anywhere in a route: becomes a problem+json response."""

    def __init__(
        self,
        kind: str,
        detail: str | None = None,
        *,
        code: str | None = None,
        errors: list[FieldError] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(detail or kind)
        self.kind = kind
        self.status, self.title = KINDS[kind]
        self.detail = detail
        self.code = code
        self.errors = errors
        self.headers = dict(headers or {})

    def body(self, instance: str | None = None) -> dict[str, Any]:
        return ProblemDetails(
            type=problem_type(self.kind),
            title=self.title,
            status=self.status,
            detail=self.detail,
            instance=instance,
            code=self.code,
            errors=self.errors,
        ).model_dump(exclude_none=True)

    def response(self, instance: str | None = None) -> JSONResponse:
        return JSONResponse(
            self.body(instance),
            status_code=self.status,
            headers=self.headers,
            media_type=PROBLEM_MEDIA_TYPE,
        )


def documented(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` entries for the given error statuses (all problem+json)."""
    titles: dict[int, list[str]] = {}
    for status, title in KINDS.values():
        titles.setdefault(status, []).append(title)
    return {
        status: {
            "model": ProblemDetails,
            "description": "; ".join(titles.get(status, ["Error"])),
            "content": {
                PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/ProblemDetails"}}
            },
        }
        for status in statuses
    }


def _field_name(loc: tuple[int | str, ...]) -> str:
    parts = [str(part) for part in loc]
    if parts and parts[0] in ("body", "query", "path", "header"):
        return ".".join(parts)
    return ".".join(["body", *parts]) if parts else "body"


def _validation_problem(error: RequestValidationError) -> Problem:
    errors = [
        FieldError(field=_field_name(tuple(item.get("loc", ()))), message=str(item.get("msg", "")))
        for item in error.errors()
    ]
    names = ", ".join(dict.fromkeys(e.field for e in errors)) or "the request"
    return Problem("validation-error", f"invalid value for {names}", errors=errors)


_STATUS_KIND = {
    400: "bad-request",
    401: "unauthorized",
    403: "forbidden",
    404: "not-found",
    405: "method-not-allowed",
    413: "payload-too-large",
    415: "unsupported-media-type",
    422: "validation-error",
}


def install(app: FastAPI) -> None:
    """Register the handlers that turn every error into problem+json."""

    async def on_problem(request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, Problem)
        return error.response(request.url.path)

    async def on_validation(request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, RequestValidationError)
        return _validation_problem(error).response(request.url.path)

    async def on_http(request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, StarletteHTTPException)
        kind = _STATUS_KIND.get(error.status_code)
        if kind is None:
            kind = "conflict" if error.status_code < 500 else "internal-error"
        problem = Problem(
            kind, str(error.detail) if error.detail else None, headers=dict(error.headers or {})
        )
        response = problem.response(request.url.path)
        response.status_code = error.status_code
        return response

    async def on_unavailable(request: Request, error: Exception) -> JSONResponse:
        log.warning("dependency unavailable", path=request.url.path, error=type(error).__name__)
        return Problem(
            "service-unavailable", "try again shortly", headers={"Retry-After": "1"}
        ).response(request.url.path)

    async def on_unexpected(request: Request, error: Exception) -> JSONResponse:
        log.error("unhandled error", path=request.url.path, error=repr(error))
        return Problem("internal-error").response(request.url.path)

    app.add_exception_handler(Problem, on_problem)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    for unavailable in (
        OSError,
        TimeoutError,
        RedisError,
        asyncpg.InterfaceError,
        asyncpg.CannotConnectNowError,
        asyncpg.TooManyConnectionsError,
    ):
        app.add_exception_handler(unavailable, on_unavailable)
    app.add_exception_handler(Exception, on_unexpected)
