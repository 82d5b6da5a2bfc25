"""Registers every CLI command on the root app. One line per area."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    # Each area adds its own line here: `from chainworker.<area> import cli as <area>_cli`
    # then `<area>_cli.register(app)`.
    from chainworker.api import cli as api_cli
    from chainworker.db import cli as db_cli
    from chainworker.jobs import cli as jobs_cli
    from chainworker.localnet import cli as localnet_cli
    from chainworker.ops import demo, reconcile_cli, services_cli

    services_cli.register(app)
    db_cli.register(app)
    localnet_cli.register(app)
    jobs_cli.register(app)
    api_cli.register(app)
    reconcile_cli.register(app)
    demo.register(app)
