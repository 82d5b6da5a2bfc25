"""The `chainworker` command: one Typer app; each area registers its own commands."""

from __future__ import annotations

import sys

import typer

from chainworker.config import SettingsError, get_settings

app = typer.Typer(
    name="chainworker",
    help="Puts tickets on Solana and keeps the database and the chain in agreement.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _register() -> None:
    """Attach each area's commands. Imports stay inside so `--help` stays fast."""
    from chainworker.ops import commands

    commands.register(app)


def main() -> None:
    _register()
    try:
        get_settings()
    except SettingsError as error:
        print(f"chainworker: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    app()
