"""`chainworker reconcile`, `chainworker reconcile holders` and `chainworker tx ...`.

Exit codes, for cron and CI: 0 clean, 1 findings (reported, and settled with --apply),
2 error (bad arguments, unreachable services): one line on stderr, nothing changed.
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Annotated, Any, TypeVar
from uuid import UUID

import asyncpg
import typer
from arq.connections import ArqRedis, RedisSettings
from redis.exceptions import RedisError
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from chainworker import services
from chainworker.chain import keys
from chainworker.chain.errors import ChainError
from chainworker.chain.rpc import SolanaRpc
from chainworker.config import Settings, get_settings
from chainworker.db.pool import create_pool
from chainworker.jobs.codec import create_arq_pool
from chainworker.lifecycle.model import TxOp
from chainworker.ops import reconcile, reconcile_holders, reconcile_tx
from chainworker.ops.reconcile_tx import OperatorError, Reference
from chainworker.pipeline.context import policy_of
from chainworker.text import plain_text, shown

EXIT_CLEAN = 0
EXIT_FINDINGS = 1
EXIT_ERROR = 2
TABLE_ROWS = 200  # beyond this the table is cut; --json has every row

T = TypeVar("T")

reconcile_app = typer.Typer(
    help="Find live transactions stuck for longer than a threshold, and settle them.",
    invoke_without_command=True,
)
tx_app = typer.Typer(help="Inspect, retry or abandon one request.", no_args_is_help=True)

_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h|d)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
# Beyond this a threshold means nothing, and far beyond it PostgreSQL's timestamps end.
MAX_DURATION_SECONDS = 3650 * 86400.0
ABANDON_REASON_MAX = 500
IDENT_MAX = 100  # a UUID in any of its spellings, or a signature (88 base58 characters)


class UsageError(Exception):
    """A bad argument: reported in one line, exit 2, nothing done."""


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


def parse_reference(ident: str, *, request_only: bool = False) -> Reference:
    # Longer is neither, and would be quoted whole in the message.
    if len(ident.strip()) > IDENT_MAX:
        raise OperatorError(f"{shown(ident)} is too long for a request id or a signature")
    return Reference.parse(ident, request_only=request_only)


def _fail(message: str) -> typer.Exit:
    typer.echo(f"chainworker: {message}", err=True)
    return typer.Exit(EXIT_ERROR)


def _run(job: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine; any expected failure becomes one line and exit 2."""
    try:
        return asyncio.run(job())
    except (UsageError, OperatorError) as error:
        raise _fail(str(error)) from None
    except ChainError as error:
        raise _fail(f"Solana RPC: {error}") from None
    except services.ServiceError as error:
        raise _fail(str(error)) from None
    except (asyncpg.PostgresError, asyncpg.InterfaceError) as error:
        raise _fail(f"PostgreSQL: {error}") from None
    except RedisError as error:
        raise _fail(f"Redis: {error}") from None
    except OSError as error:
        raise _fail(f"cannot reach a service: {error}") from None


@asynccontextmanager
async def _database(settings: Settings) -> AsyncIterator[asyncpg.Pool]:
    target = await services.resolve_postgres(settings)
    pool = await create_pool(target.app_dsn, settings)
    try:
        yield pool
    finally:
        await pool.close()


@asynccontextmanager
async def _chain(settings: Settings) -> AsyncIterator[SolanaRpc]:
    rpc = SolanaRpc.from_settings(settings)
    try:
        yield rpc
    finally:
        await rpc.close()


@asynccontextmanager
async def _queue(settings: Settings) -> AsyncIterator[ArqRedis]:
    target = await services.resolve_redis(settings)
    arq = await create_arq_pool(RedisSettings.from_dsn(target.url))
    try:
        yield arq
    finally:
        await arq.aclose()


@contextmanager
def _progress(enabled: bool, label: str) -> Iterator[Callable[[int], None] | None]:
    """A progress display on stderr, only when stderr is a terminal."""
    console = Console(stderr=True)
    if not enabled or not console.is_terminal:
        yield None
        return
    columns = (SpinnerColumn(), TextColumn(label), BarColumn(),
               TextColumn("{task.completed:,} rows"), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task(label, total=None)
        yield lambda n: progress.advance(task, n)


def _emit_json(payload: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(payload, default=str) + "\n")


def _short(text: str, keep: int = 10) -> str:
    return text if len(text) <= 2 * keep + 1 else f"{text[:keep]}…{text[-4:]}"


# --- reconcile -----------------------------------------------------------------------


def _findings_table(report: reconcile.ScanReport) -> Table:
    table = Table(title=f"live transactions (block height {report.block_height:,})")
    for column in ("signature", "tenant", "op", "status", "try", "age", "chain", "verdict"):
        table.add_column(column)
    if report.applied:
        table.add_column("result")
    for finding in report.findings[:TABLE_ROWS]:
        row = finding.row
        chain = "unknown"
        if finding.chain is not None:
            chain = finding.chain.confirmation_status or "processed"
            if finding.chain.err is not None:
                chain += f" err {finding.chain.err.code}"
        cells = [
            _short(row.tx_signature), str(row.tenant_id)[:8], row.tx_type, row.status,
            str(row.attempt), f"{finding.age_seconds:,.0f}s", chain,
            f"{finding.verdict.value} ({finding.decision.action.kind})",
        ]
        if report.applied:
            cells.append(finding.error or finding.applied or "-")
        table.add_row(*cells)
    return table


def _print_scan(report: reconcile.ScanReport) -> None:
    console = Console()
    if report.findings:
        console.print(_findings_table(report))
        hidden = len(report.findings) - TABLE_ROWS
        if hidden > 0:
            console.print(f"… {hidden:,} more rows (use --json for all)")
    counts = ", ".join(f"{n} {verdict}" for verdict, n in report.by_verdict.items() if n)
    summary = report.summary()
    console.print(
        f"{summary['scanned']:,} live transaction(s) found ({counts or 'none'}) in "
        f"{summary['seconds']:.1f}s; "
        + (f"{summary['settled']} settled, {summary['errors']} error(s)" if report.applied
           else "dry run: nothing changed")
    )


@reconcile_app.callback()
def reconcile_command(
    ctx: typer.Context,
    older_than: Annotated[
        str, typer.Option(help="Only transactions submitted longer ago than this (90s, 2m, 1h).")
    ] = "2m",
    tenant: Annotated[str | None, typer.Option(help="Only this tenant's transactions.")] = None,
    op: Annotated[str | None, typer.Option(help="Only this operation: mint, transfer or burn.")]
    = None,
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
            raise UsageError(f"--op must be mint, transfer or burn, not {shown(op)}")
        options = reconcile.ScanOptions(
            older_than_seconds=parse_duration(older_than),
            tenant_id=parse_uuid(tenant, "tenant"),
            op=op,
            limit=limit,
        )
    except UsageError as error:
        raise _fail(str(error)) from None
    settings = get_settings()

    async def run() -> reconcile.ScanReport:
        with _progress(not as_json, "reconciling") as on_progress:
            if dry_run:
                async with _database(settings) as pool, _chain(settings) as rpc:
                    return await reconcile.scan(
                        pool, rpc, policy_of(settings), options,
                        commitment=settings.commitment, on_progress=on_progress,
                    )
            return await _scan_and_apply(settings, options, on_progress)

    report = _run(run)
    if as_json:
        _emit_json(report.as_json())
    else:
        _print_scan(report)
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
        raise _fail(str(error)) from None
    settings = get_settings()

    async def run() -> reconcile_holders.HoldersReport:
        seed = keys.load_custodial_seed(settings)
        with _progress(not as_json, "checking holders") as on_progress:
            async with _database(settings) as pool, _chain(settings) as rpc:
                return await reconcile_holders.reconcile_holders(
                    pool, rpc, seed, tenant_id=tenant_id, apply=apply, on_progress=on_progress
                )

    report = _run(run)
    if as_json:
        _emit_json(report.as_json())
    else:
        _print_holders(report)
    raise typer.Exit(EXIT_FINDINGS if report.drifts else EXIT_CLEAN)


def _print_holders(report: reconcile_holders.HoldersReport) -> None:
    console = Console()
    if report.drifts:
        table = Table(title="holder drift")
        for column in ("ticket", "tenant", "kind", "database", "chain", "action"):
            table.add_column(column)
        for drift in report.drifts[:TABLE_ROWS]:
            action = "recorded" if drift.recorded else (
                "recordable (--apply)" if drift.kind.recordable and not report.applied
                else "flagged"
            )
            table.add_row(
                str(drift.ticket.ticket_id)[:8], str(drift.ticket.tenant_id)[:8], drift.kind,
                _short(drift.expected_holder or "-"),
                _short(drift.chain_holder or f"supply {drift.chain_supply}"), action,
            )
        console.print(table)
    summary = report.as_json()["summary"]
    console.print(
        f"{summary['checked']:,} minted ticket(s) checked, {summary['drifts']} drift(s), "
        f"{summary['recorded']} recorded; each drift is in blockchain_sync_log"
    )


# --- tx ----------------------------------------------------------------------------


@tx_app.command("show")
def tx_show(
    ident: Annotated[str, typer.Argument(metavar="SIGNATURE|REQUEST_ID")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """The request, its attempt chain, each attempt's chain status and logs."""
    settings = get_settings()

    async def run() -> reconcile_tx.TxReport:
        ref = parse_reference(ident)
        async with _database(settings) as pool, _chain(settings) as rpc:
            return await reconcile_tx.show(pool, rpc, ref, commitment=settings.commitment)

    report = _run(run)
    if as_json:
        _emit_json(report.as_json())
        return
    console = Console()
    request = report.request
    if request is not None:
        console.print(
            f"request {request.id} ({request.operation} of ticket {request.ticket_id}, "
            f"tenant {report.tenant_id}): [bold]{request.status}[/bold]"
            + (f" — {request.outcome_code}: {request.outcome_message}"
               if request.outcome_code else "")
        )
    table = Table(title=f"attempts (block height {report.block_height:,})")
    for column in ("#", "signature", "status", "valid until", "slot", "chain", "error"):
        table.add_column(column)
    for item in report.attempts:
        row = item.attempt
        chain = "unknown" if item.chain is None else (
            (item.chain.confirmation_status or "processed")
            + (f" err {item.chain.err.code}" if item.chain.err else "")
        )
        table.add_row(
            str(row.attempt), row.tx_signature, row.status, f"{row.last_valid_block_height:,}",
            str(row.slot or "-"), chain, row.error_code or "-",
        )
    console.print(table)
    for item in report.attempts:
        if item.logs:
            console.print(f"logs of attempt {item.attempt.attempt}:")
            for line in item.logs:
                console.print(f"  {line}", markup=False, highlight=False)


@tx_app.command("retry")
def tx_retry(
    ident: Annotated[str, typer.Argument(metavar="REQUEST_ID")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """A failed or expired request back to queued, and enqueued again."""
    settings = get_settings()

    async def run() -> Any:
        ref = parse_reference(ident, request_only=True)
        async with _database(settings) as pool, _queue(settings) as arq:
            return await reconcile_tx.retry(pool, arq, settings.queue_name, ref)

    request = _run(run)
    if as_json:
        _emit_json({"request_id": str(request.id), "status": request.status})
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
        raise _fail(str(error)) from None
    settings = get_settings()

    async def run() -> Any:
        ref = parse_reference(ident, request_only=True)
        async with _database(settings) as pool, _chain(settings) as rpc:
            return await reconcile_tx.abandon(
                pool, rpc, ref, reason, commitment=settings.commitment, force=force
            )

    request = _run(run)
    if as_json:
        _emit_json({"request_id": str(request.id), "status": request.status})
    else:
        typer.echo(f"request {request.id} is {request.status}")


def register(app: typer.Typer) -> None:
    app.add_typer(reconcile_app, name="reconcile")
    app.add_typer(tx_app, name="tx")
