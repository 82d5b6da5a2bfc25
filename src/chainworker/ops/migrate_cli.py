"""`chainworker migrate`: apply pending migrations; `chainworker migrate status`: list them."""

from __future__ import annotations

import asyncio

import typer
from rich.console import Console
from rich.table import Table

from chainworker import services
from chainworker.config import get_settings
from chainworker.db.errors import DatabaseError
from chainworker.db.migrate import MigrationState, migrate, migration_status

migrate_app = typer.Typer(help="Apply the schema migrations, or list their state.")


async def _admin_dsn() -> str:
    target = await services.resolve_postgres(get_settings())
    return target.admin_dsn


def _fail(error: Exception) -> typer.Exit:
    typer.echo(f"chainworker: {error}", err=True)
    return typer.Exit(2)


@migrate_app.callback(invoke_without_command=True)
def apply(ctx: typer.Context) -> None:
    """Apply every pending migration, in order, each in its own transaction."""
    if ctx.invoked_subcommand is not None:
        return

    async def run() -> list[str]:
        return await migrate(await _admin_dsn())

    try:
        applied = asyncio.run(run())
    except (DatabaseError, services.ServiceError, OSError) as error:
        raise _fail(error) from None
    if not applied:
        typer.echo("schema up to date")
        return
    for name in applied:
        typer.echo(f"applied {name}")


@migrate_app.command("status")
def status() -> None:
    """List the migrations: applied, pending, or changed since applied."""

    async def run() -> list[MigrationState]:
        return await migration_status(await _admin_dsn())

    try:
        states = asyncio.run(run())
    except (DatabaseError, services.ServiceError, OSError) as error:
        raise _fail(error) from None
    table = Table("migration", "state", "applied at (UTC)", "sha256")
    for state in states:
        if state.applied_at is None:
            label = "[yellow]pending[/yellow]"
        elif state.changed:
            label = "[red]changed[/red]"
        else:
            label = "[green]applied[/green]"
        applied_at = f"{state.applied_at:%Y-%m-%d %H:%M:%S}" if state.applied_at else ""
        table.add_row(state.name, label, applied_at, state.checksum[:12])
    Console().print(table)


def register(app: typer.Typer) -> None:
    app.add_typer(migrate_app, name="migrate")
