"""The bearer-token dependency: every /v1 route knows its caller and tenant from it."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from chainworker.api.context import ApiContext, get_context
from chainworker.api.problems import Problem
from chainworker.api.tokens import Principal, verify

_bearer = HTTPBearer(auto_error=False, description="A chainworker API token (cwt_...).")
_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="chainworker"'}


async def current_principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    context: Annotated[ApiContext, Depends(get_context)],
) -> Principal:
    if credentials is None:
        raise Problem("unauthorized", "send Authorization: Bearer <token>", headers=_CHALLENGE)
    text = credentials.credentials
    principal = context.tokens.get(text)
    if principal is None:
        async with context.pool.acquire() as conn:
            principal = await verify(conn, text)
        if principal is None:
            raise Problem(
                "unauthorized", "the token is unknown, expired or revoked", headers=_CHALLENGE
            )
        context.tokens.put(text, principal)
    request.state.principal = principal  # for the cross-tenant 404 handler
    return principal


async def admin_principal(
    principal: Annotated[Principal, Depends(current_principal)],
) -> Principal:
    if not principal.is_admin or principal.user_id is None:
        raise Problem("forbidden", "this needs an admin token")
    return principal


Caller = Annotated[Principal, Depends(current_principal)]
Admin = Annotated[Principal, Depends(admin_principal)]
