"""The `chainworker` command: one Typer app; each area registers its own commands."""

from __future__ import annotations

import sys
from collections.abc import Sequence

import typer

from chainworker.config import SettingsError, get_settings
from chainworker.db.errors import DatabaseError
from chainworker.obs import logs

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
    sys.exit(run(sys.argv[1:]))


def run(args: Sequence[str]) -> int:
    """Run one command line; its exit code. Every error is one line on stderr and exit 2."""
    try:
        code = app(args=list(args), standalone_mode=False)
    except typer.TyperException as error:
        # Typer's own usage errors (a missing option, a value of the wrong type) would be a
        # boxed usage text: one line instead, like the commands' errors.
        if type(error).__name__ != "NoArgsIsHelpError":  # the help is printed already
            message = " ".join(error.format_message().split())
            ctx = getattr(error, "ctx", None)
            hint = f" (see {ctx.command_path} --help)" if ctx is not None else ""
            typer.echo(f"chainworker: {message}{hint}", err=True)
        return error.exit_code
    except typer.Abort:
        typer.echo("chainworker: aborted", err=True)
        return 1
    except DatabaseError as error:
        # e.g. a DATABASE_URL whose role row-level security does not bind: refused by
        # every command that opens the runtime pool, in one line.
        typer.echo(f"chainworker: {error}", err=True)
        return 2
    except Exception:
        # Unforeseen: reported through the log handler, so registered secrets are redacted
        # and the traceback shows no local variables. Exit 2, the commands' "error".
        logs.get_logger(__name__).exception("command failed")
        return 2
    # A command that returns normally gives None; `raise typer.Exit(n)` gives n.
    return code if isinstance(code, int) else 0
