"""`chainworker services`: which PostgreSQL and Redis are in use; stop the embedded ones."""

from __future__ import annotations

import asyncio

import typer
from rich.console import Console
from rich.table import Table

from chainworker import services
from chainworker.config import get_settings

services_app = typer.Typer(help="Show or stop the services chainworker uses.")


@services_app.callback(invoke_without_command=True)
def status(ctx: typer.Context) -> None:
    """Show which PostgreSQL and Redis chainworker uses (starting embedded ones if needed)."""
    if ctx.invoked_subcommand is not None:
        return
    settings = get_settings()

    async def resolve() -> tuple[services.PostgresTarget, services.RedisTarget]:
        return await services.resolve_postgres(settings), await services.resolve_redis(settings)

    try:
        pg, redis = asyncio.run(resolve())
    except (services.ServiceError, OSError) as error:
        typer.echo(f"chainworker: {error}", err=True)
        raise typer.Exit(2) from None
    table = Table("service", "origin", "where")
    table.add_row("postgresql", pg.origin, _hide_password(pg.app_dsn))
    table.add_row("redis", redis.origin, _hide_password(redis.url))
    Console().print(table)


@services_app.command("stop")
def stop() -> None:
    """Stop the embedded PostgreSQL and Valkey of the state directory, if they run."""
    state = get_settings().state_dir
    pg = services.stop_embedded_postgres(state / "postgres")
    valkey = services.stop_embedded_valkey(state / "valkey")
    typer.echo(f"embedded postgresql: {'stopped' if pg else 'not running'}")
    typer.echo(f"embedded valkey: {'stopped' if valkey else 'not running'}")


def _hide_password(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    userinfo, at, host = rest.rpartition("@")
    if at and ":" in userinfo:
        userinfo = userinfo.split(":", 1)[0] + ":***"
    return f"{scheme}{sep}{userinfo}{at}{host}"


def register(app: typer.Typer) -> None:
    app.add_typer(services_app, name="services")
