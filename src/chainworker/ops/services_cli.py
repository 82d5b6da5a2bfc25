"""`chainworker services`: which PostgreSQL and Redis are in use; stop the embedded ones."""

from __future__ import annotations

import asyncio

import typer
from rich.console import Console
from rich.table import Table

from chainworker import services
from chainworker.config import get_settings
from chainworker.obs.logs import redact_url

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
    # Scheme, host and port: a URL's user, password and query are not for the screen.
    # A server chainworker manages may listen on a socket directory, which no URL host shows.
    where = redact_url(pg.app_dsn) if pg.server is None else f"{pg.server.host}:{pg.server.port}"
    table.add_row("postgresql", pg.origin, where)
    table.add_row("redis", redis.origin, redact_url(redis.url))
    Console().print(table)


@services_app.command("stop")
def stop() -> None:
    """Stop the embedded PostgreSQL and Valkey of the state directory, if they run."""
    state = get_settings().state_dir
    pg = services.stop_embedded_postgres(state / "postgres")
    valkey = services.stop_embedded_valkey(state / "valkey")
    typer.echo(f"embedded postgresql: {'stopped' if pg else 'not running'}")
    typer.echo(f"embedded valkey: {'stopped' if valkey else 'not running'}")


def register(app: typer.Typer) -> None:
    app.add_typer(services_app, name="services")
