"""`chainworker reconcile` and `chainworker reconcile holders`: their options and runs.

The scan and its settling are `reconcile`'s, the holder comparison `reconcile_holders`';
how a command opens services and fails is `reconcile_cli_run`'s (exit codes there), what
it prints `reconcile_output`'s. `chainworker tx ...` is `reconcile_tx_cli`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Annotated
from uuid import UUID

import typer

from chainworker import services
from chainworker.chain import keys
from chainworker.config import Settings, get_settings
from chainworker.lifecycle.model import TxOp
from chainworker.ops import reconcile, reconcile_holders
from chainworker.ops.reconcile_cli_run import (
    EXIT_CLEAN,
    EXIT_FINDINGS,
    UsageError,
    exit_error,
    open_chain,
    open_database,
    run_command,
)
from chainworker.ops.reconcile_output import emit_json, print_holders, print_scan, progress
from chainworker.pipeline.context import policy_of
from chainworker.text import shown

reconcile_app = typer.Typer(
    help="Find live transactions stuck for longer than a threshold, and settle them.",
    invoke_without_command=True,
)

_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h|d)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
# Beyond this a threshold means nothing, and far beyond it PostgreSQL's timestamps end.
MAX_DURATION_SECONDS = 3650 * 86400.0


def parse_duration(text: str) -> float:
    """'90s', '2m', '1h30m', '500ms' or plain seconds ('120') -> seconds."""
    value = text.strip().lower()
    if re.fullmatch(r"[0-9]+(\.[0-9]+)?", value):
        seconds = float(value)
    elif not value or _DURATION_PART.sub("", value):
        raise UsageError(f"{shown(text)} is not a duration (examples: 90s, 2m, 1h30m)")
    else:
        seconds = sum(float(n) * _UNIT_SECONDS[unit] for n, unit in _DURATION_PART.findall(value))
    if not seconds <= MAX_DURATION_SECONDS:  # also inf and nan, from hundreds of digits
        raise UsageError(f"{shown(text)} is longer than {MAX_DURATION_SECONDS / 86400:.0f} days")
    return seconds


def parse_uuid(text: str | None, what: str) -> UUID | None:
    if text is None:
        return None
    try:
        return UUID(text)
    except ValueError:
        raise UsageError(f"{what} {shown(text)} is not a UUID") from None


@reconcile_app.callback()
def reconcile_command(
    ctx: typer.Context,
    older_than: Annotated[
        str, typer.Option(help="Only transactions submitted longer ago than this (90s, 2m, 1h).")
    ] = "2m",
    tenant: Annotated[str | None, typer.Option(help="Only this tenant's transactions.")] = None,
    op: Annotated[
        str | None, typer.Option(help=f"Only this operation: {', '.join(TxOp)}.")
    ] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="At most this many rows.")] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run/--apply", help="Report only (default), or settle.")
    ] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Classify live transactions older than --older-than; --apply settles the final ones."""
    if ctx.invoked_subcommand is not None:
        return
    try:
        if op is not None and op not in set(TxOp):
            raise UsageError(f"--op must be one of {', '.join(TxOp)}, not {shown(op)}")
        options = reconcile.ScanOptions(
            older_than_seconds=parse_duration(older_than),
            tenant_id=parse_uuid(tenant, "tenant"),
            op=op,
            limit=limit,
        )
    except UsageError as error:
        raise exit_error(str(error)) from None
    settings = get_settings()

    async def run() -> reconcile.ScanReport:
        with progress(not as_json, "reconciling") as on_progress:
            if dry_run:
                async with open_database(settings) as pool, open_chain(settings) as rpc:
                    return await reconcile.scan(
                        pool, rpc, policy_of(settings), options,
                        commitment=settings.commitment, on_progress=on_progress,
                    )
            return await _scan_and_apply(settings, options, on_progress)

    report = run_command(run)
    if as_json:
        emit_json(report.as_json())
    else:
        print_scan(report)
    raise typer.Exit(EXIT_FINDINGS if report.findings else EXIT_CLEAN)


async def _scan_and_apply(
    settings: Settings,
    options: reconcile.ScanOptions,
    on_progress: Callable[[int], None] | None,
) -> reconcile.ScanReport:
    from chainworker.pipeline.context import open_context

    pg = await services.resolve_postgres(settings)
    ctx = await open_context(settings, pg.app_dsn)
    try:
        report = await reconcile.scan(
            ctx.pool, ctx.rpc, ctx.policy, options,
            commitment=settings.commitment, on_progress=on_progress,
        )
        return await reconcile.apply(ctx, report)
    finally:
        await ctx.close()


@reconcile_app.command("holders")
def holders_command(
    tenant: Annotated[str | None, typer.Option(help="Only this tenant's tickets.")] = None,
    apply: Annotated[
        bool, typer.Option("--apply", help="Record the chain's truth where the policy allows.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Compare minted tickets with the chain (supply, holder); log and report each drift."""
    try:
        tenant_id = parse_uuid(tenant, "tenant")
    except UsageError as error:
        raise exit_error(str(error)) from None
    settings = get_settings()

    async def run() -> reconcile_holders.HoldersReport:
        seed = keys.load_custodial_seed(settings)
        with progress(not as_json, "checking holders") as on_progress:
            async with open_database(settings) as pool, open_chain(settings) as rpc:
                return await reconcile_holders.reconcile_holders(
                    pool, rpc, seed, tenant_id=tenant_id, apply=apply, on_progress=on_progress
                )

    report = run_command(run)
    if as_json:
        emit_json(report.as_json())
    else:
        print_holders(report)
    raise typer.Exit(EXIT_FINDINGS if report.drifts else EXIT_CLEAN)


def register(app: typer.Typer) -> None:
    app.add_typer(reconcile_app, name="reconcile")
