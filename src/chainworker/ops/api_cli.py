"""`chainworker api`, `chainworker token create` and `chainworker token revoke`."""

from __future__ import annotations

import asyncio
import json
from typing import Annotated
from uuid import UUID

import asyncpg
import typer

from chainworker import services
from chainworker.api.tokens import (
    IssuedToken,
    UnknownUser,
    issue_token,
    parse_ttl,
    revoke_token,
)
from chainworker.config import get_settings
from chainworker.db import roles
from chainworker.db.pool import create_pool
from chainworker.text import plain_text, shown

token_app = typer.Typer(help="Issue and revoke API tokens.")


def _fail(message: str) -> typer.Exit:
    typer.echo(f"chainworker: {message}", err=True)
    return typer.Exit(2)


def _uuid(text: str, what: str) -> UUID:
    try:
        return UUID(text)
    except ValueError:
        raise _fail(f"{what} {shown(text)} is not a UUID") from None


def api(
    host: Annotated[
        str | None, typer.Option(help="Bind address. Default: setting API_HOST.")
    ] = None,
    port: Annotated[
        int | None, typer.Option(min=1, max=65535, help="Port. Default: setting API_PORT.")
    ] = None,
    workers: Annotated[int, typer.Option(min=1, max=64, help="Server processes.")] = 1,
) -> None:
    """Serve the HTTP API (OpenAPI at /openapi.json, docs at /docs)."""
    import uvicorn

    settings = get_settings()
    try:  # before uvicorn starts: a refused role is one line and exit 2, not a traceback
        pg = asyncio.run(services.resolve_postgres(settings))
        asyncio.run(roles.check_runtime_dsn(pg.app_dsn))
    except (services.ServiceError, OSError) as error:
        raise _fail(str(error)) from None
    uvicorn.run(
        "chainworker.api.serve:build",
        factory=True,
        host=host or settings.api_host,
        port=port or settings.api_port,
        workers=workers,
        log_config=None,
        access_log=False,
        proxy_headers=False,
    )


@token_app.command("create")
def create(
    tenant: Annotated[str, typer.Option("--tenant", help="Tenant id the token is bound to.")],
    name: Annotated[str, typer.Option("--name", help="Who uses it, e.g. ticket-service.")],
    admin: Annotated[bool, typer.Option("--admin", help="May vote on revocations.")] = False,
    user: Annotated[
        str | None, typer.Option("--user", help="The admin user the token votes as (with --admin).")
    ] = None,
    ttl: Annotated[str | None, typer.Option("--ttl", help="Lifetime: 30d, 12h, 90m.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Issue a token and print it (it is shown only this once)."""
    tenant_id = _uuid(tenant, "tenant")
    user_id = _uuid(user, "user") if user else None
    if admin and user_id is None:
        raise _fail("--admin needs --user: revocation votes are recorded against a user")
    try:
        plain_text(name, "--name", max_length=100)
        lifetime = parse_ttl(ttl) if ttl else None
    except ValueError as error:
        raise _fail(str(error)) from None
    settings = get_settings()

    async def run() -> IssuedToken:
        pg = await services.resolve_postgres(settings)
        pool = await create_pool(pg.app_dsn, settings)
        try:
            return await issue_token(
                pool, tenant_id, name, is_admin=admin, user_id=user_id, ttl=lifetime
            )
        finally:
            await pool.close()

    try:
        issued = asyncio.run(run())
    except (asyncpg.ForeignKeyViolationError, UnknownUser):
        raise _fail("no such tenant, or no such user in that tenant") from None
    except (services.ServiceError, OSError) as error:
        raise _fail(str(error)) from None
    except asyncpg.PostgresError as error:
        raise _fail(f"PostgreSQL: {error}") from None
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "token_id": str(issued.token_id),
                    "tenant_id": str(issued.tenant_id),
                    "name": issued.name,
                    "is_admin": issued.is_admin,
                    "expires_at": issued.expires_at.isoformat() if issued.expires_at else None,
                    "token": issued.token,
                }
            )
        )
    else:
        typer.echo(issued.token)


@token_app.command("revoke")
def revoke(token_id: Annotated[str, typer.Argument(help="The token's id.")]) -> None:
    """End a token now (API processes may trust it for API_AUTH_CACHE_SECONDS more)."""
    ident = _uuid(token_id, "token id")
    settings = get_settings()

    async def run() -> UUID | None:
        pg = await services.resolve_postgres(settings)
        conn = await asyncpg.connect(pg.admin_dsn)
        try:
            return await revoke_token(conn, ident)
        finally:
            await conn.close()

    try:
        tenant_id = asyncio.run(run())
    except (services.ServiceError, OSError) as error:
        raise _fail(str(error)) from None
    if tenant_id is None:
        raise _fail(f"no live token {ident}")
    typer.echo(f"revoked token {ident} of tenant {tenant_id}")


def register(app: typer.Typer) -> None:
    app.command("api")(api)
    app.add_typer(token_app, name="token")
