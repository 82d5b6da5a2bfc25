"""POST /v1/wallets: register a user's external wallet (the holder of their future NFTs)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from solders.pubkey import Pubkey

from chainworker.api.auth import Caller
from chainworker.api.context import ApiContext, get_context
from chainworker.api.idempotency import Claim, IdempotencyKey, fingerprint, run_once
from chainworker.api.isolation import Hidden
from chainworker.api.problems import FieldError, Problem, documented
from chainworker.api.schemas import Wallet, WalletBody
from chainworker.api.tokens import Principal
from chainworker.db import tickets
from chainworker.db.pool import tenant_transaction

router = APIRouter(prefix="/v1", tags=["wallets"])
Context = Annotated[ApiContext, Depends(get_context)]


def parse_wallet(address: str) -> Pubkey:
    """A base58 ed25519 public key (32 bytes, on the curve); Problem otherwise."""
    try:
        key = Pubkey.from_string(address)
    except ValueError:
        key = None
    if key is None or len(bytes(key)) != 32 or not key.is_on_curve():
        why = "is not a base58 ed25519 public key"
        raise Problem(
            "validation-error",
            f"address {why}",
            errors=[FieldError(field="body.address", message=why)],
        )
    return key


async def _register(
    context: ApiContext, principal: Principal, claim: Claim, body: WalletBody, address: str
) -> Response:
    async with tenant_transaction(
        context.pool, principal.tenant_id, reason="wallet registered", source="api"
    ) as conn:
        if not await tickets.user_exists(conn, body.user_id):
            raise Hidden("users", str(body.user_id))
        await tickets.register_wallet(conn, principal.tenant_id, body.user_id, address)
        result = Wallet(user_id=body.user_id, address=address).model_dump(mode="json")
        await claim.complete(conn, 201, result)
    return JSONResponse(result, status_code=201)


@router.post(
    "/wallets",
    status_code=201,
    response_model=Wallet,
    responses=documented(400, 401, 404, 409, 422, 503),
    summary="Register (or replace) a user's external wallet address",
)
async def register_wallet(
    body: WalletBody, request: Request, principal: Caller, key: IdempotencyKey, context: Context
) -> Response:
    address = str(parse_wallet(body.address))
    return await run_once(
        context,
        principal,
        key,
        "POST /v1/wallets",
        fingerprint("POST", request.url.path, body.model_dump(mode="json")),
        lambda claim: _register(context, principal, claim, body, address),
    )
