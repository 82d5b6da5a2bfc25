"""`chainworker tx show|retry|abandon`: one request, named by its id or a signature.

The actions are `reconcile_tx`'s; how a command opens services and fails is
`reconcile_cli_run`'s, what `tx show` prints `reconcile_output`'s.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from chainworker.config import get_settings
from chainworker.ops import reconcile_tx
from chainworker.ops.reconcile_cli_run import (
    exit_error,
    open_chain,
    open_database,
    open_queue,
    run_command,
)
from chainworker.ops.reconcile_output import emit_json, print_tx
from chainworker.ops.reconcile_tx import OperatorError, Reference
from chainworker.text import plain_text, shown

tx_app = typer.Typer(help="Inspect, retry or abandon one request.", no_args_is_help=True)

ABANDON_REASON_MAX = 500
IDENT_MAX = 100  # a UUID in any of its spellings, or a signature (88 base58 characters)


def parse_reference(ident: str, *, request_only: bool = False) -> Reference:
    # Longer is neither, and would be quoted whole in the message.
    if len(ident.strip()) > IDENT_MAX:
        raise OperatorError(f"{shown(ident)} is too long for a request id or a signature")
    return Reference.parse(ident, request_only=request_only)


@tx_app.command("show")
def tx_show(
    ident: Annotated[str, typer.Argument(metavar="SIGNATURE|REQUEST_ID")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """The request, its attempt chain, each attempt's chain status and logs."""
    settings = get_settings()

    async def run() -> reconcile_tx.TxReport:
        ref = parse_reference(ident)
        async with open_database(settings) as pool, open_chain(settings) as rpc:
            return await reconcile_tx.show(pool, rpc, ref, commitment=settings.commitment)

    report = run_command(run)
    if as_json:
        emit_json(report.as_json())
        return
    print_tx(report)


@tx_app.command("retry")
def tx_retry(
    ident: Annotated[str, typer.Argument(metavar="REQUEST_ID")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """A failed or expired request back to queued, and enqueued again."""
    settings = get_settings()

    async def run() -> Any:
        ref = parse_reference(ident, request_only=True)
        async with open_database(settings) as pool, open_queue(settings) as arq:
            return await reconcile_tx.retry(pool, arq, settings.queue_name, ref)

    request = run_command(run)
    if as_json:
        emit_json({"request_id": str(request.id), "status": request.status})
    else:
        typer.echo(f"request {request.id} is {request.status} again and enqueued")


@tx_app.command("abandon")
def tx_abandon(
    ident: Annotated[str, typer.Argument(metavar="REQUEST_ID")],
    reason: Annotated[str, typer.Option(help="Why; kept in the audit log and the history.")],
    force: Annotated[
        bool, typer.Option(help="Abandon even while the live attempt's blockhash is valid.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """A live request -> abandoned; its live attempt ended; audited."""
    try:
        # Kept in the audit log, the ticket's history and an outbox event: checked first.
        plain_text(reason, "--reason", max_length=ABANDON_REASON_MAX)
    except ValueError as error:
        raise exit_error(str(error)) from None
    settings = get_settings()

    async def run() -> Any:
        ref = parse_reference(ident, request_only=True)
        async with open_database(settings) as pool, open_chain(settings) as rpc:
            return await reconcile_tx.abandon(
                pool, rpc, ref, reason, commitment=settings.commitment, force=force
            )

    request = run_command(run)
    if as_json:
        emit_json({"request_id": str(request.id), "status": request.status})
    else:
        typer.echo(f"request {request.id} is {request.status}")


def register(app: typer.Typer) -> None:
    app.add_typer(tx_app, name="tx")
