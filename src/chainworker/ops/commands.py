"""Registers every CLI command on the root app. One line per area."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    # Each area adds its own line here: `from chainworker.ops import <area>_cli`, then
    # `<area>_cli.register(app)`. Imports stay inside so `--help` stays fast.
    from chainworker.ops import (
        api_cli,
        authority_cli,
        demo,
        event_cli,
        hsm_cli,
        localnet_cli,
        migrate_cli,
        reconcile_cli,
        reconcile_tx_cli,
        services_cli,
        worker_cli,
    )

    services_cli.register(app)
    migrate_cli.register(app)
    localnet_cli.register(app)
    worker_cli.register(app)
    event_cli.register(app)
    api_cli.register(app)
    authority_cli.register(app)
    hsm_cli.register(app)
    reconcile_cli.register(app)
    reconcile_tx_cli.register(app)
    demo.register(app)
    event_cli.register(app)
