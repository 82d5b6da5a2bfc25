"""/healthz (the process answers), /readyz (database, Redis and RPC reachable), /metrics."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from chainworker.api.context import ApiContext, get_context
from chainworker.api.schemas import Health
from chainworker.db.pool import ping
from chainworker.obs import metrics

router = APIRouter(tags=["health"])
Context = Annotated[ApiContext, Depends(get_context)]
CHECK_TIMEOUT_SECONDS = 2.0


@router.get("/healthz", response_model=Health, summary="The process is up")
async def healthz() -> Health:
    return Health(status="ok")


async def _check(probe: Awaitable[object]) -> str:
    try:
        await asyncio.wait_for(probe, CHECK_TIMEOUT_SECONDS)
    except Exception as error:  # any failure means "not ready"; the kind is reported
        return f"error: {type(error).__name__}"
    return "ok"


@router.get(
    "/readyz",
    response_model=Health,
    responses={503: {"model": Health, "description": "A dependency is unreachable"}},
    summary="Database, Redis and Solana RPC are reachable",
)
async def readyz(context: Context) -> JSONResponse:
    database, redis, rpc = await asyncio.gather(
        _check(ping(context.pool)),
        _check(context.arq.ping()),
        _check(context.rpc.block_height()),
    )
    checks = {"database": database, "redis": redis, "rpc": rpc}
    ready = all(value == "ok" for value in checks.values())
    body = Health(status="ok" if ready else "unavailable", checks=checks)
    return JSONResponse(body.model_dump(), status_code=200 if ready else 503)


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        200: {
            "content": {"text/plain": {"schema": {"type": "string"}}},
            "description": "Prometheus exposition",
        }
    },
    summary="Prometheus metrics",
)
async def prometheus() -> Response:
    return Response(generate_latest(metrics.REGISTRY), media_type=CONTENT_TYPE_LATEST)
