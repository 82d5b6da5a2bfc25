"""The `chainworker` command: one Typer app; each area registers its own commands."""

from __future__ import annotations

import sys

import typer

from chainworker.config import SettingsError, get_settings
from chainworker.db.errors import DatabaseError
from chainworker.ops import logs

app = typer.Typer(
    name="chainworker",
    help="Puts tickets on Solana and keeps the database and the chain in agreement.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    pretty_exceptions_show_locals=False,
    add_completion=False,
)


@app.callback()
def _start() -> None:
    # Runs before every command, so none runs without the settings read and logging set
    # up from them (secrets registered for redaction).
    try:
        settings = get_settings()
    except SettingsError as error:
        typer.echo(f"chainworker: {error}", err=True)
        raise typer.Exit(2) from None
    logs.configure_from_settings(settings)


def _register() -> None:
    """Attach each area's commands. Imports stay inside so `--help` stays fast."""
    from chainworker.ops import commands

    commands.register(app)


def main() -> None:
    # Until the settings are read nothing may render with structlog's defaults: their
    # tracebacks show local variables, which hold keys and seeds.
    logs.configure_logging()
    _register()
    try:
        app()
    except DatabaseError as error:
        # e.g. a DATABASE_URL whose role row-level security does not bind: refused by
        # every command that opens the runtime pool, in one line.
        print(f"chainworker: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    except Exception:
        # Unforeseen: reported through the log handler, so registered secrets are redacted
        # and the traceback shows no local variables. Exit 2, the commands' "error".
        logs.get_logger(__name__).exception("command failed")
        raise SystemExit(2) from None
