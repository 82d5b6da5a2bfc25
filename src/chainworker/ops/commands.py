"""Registers every CLI command on the root app. One line per area."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    from chainworker.ops import services_cli

    services_cli.register(app)
