"""What `chainworker reconcile` and `chainworker tx` print: JSON on stdout, or Rich tables
and summaries for a person, and a progress display on stderr when it is a terminal.

Rendering only: the reports come from `reconcile`, `reconcile_holders` and `reconcile_tx`,
and nothing here reads a service.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from chainworker.ops import reconcile, reconcile_holders, reconcile_tx

TABLE_ROWS = 200  # beyond this the table is cut; --json has every row


@contextmanager
def progress(enabled: bool, label: str) -> Iterator[Callable[[int], None] | None]:
    """A progress display on stderr, only when stderr is a terminal."""
    console = Console(stderr=True)
    if not enabled or not console.is_terminal:
        yield None
        return
    columns = (SpinnerColumn(), TextColumn(label), BarColumn(),
               TextColumn("{task.completed:,} rows"), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as shown:
        task = shown.add_task(label, total=None)
        yield lambda n: shown.advance(task, n)


def emit_json(payload: dict[str, Any]) -> None:
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


def print_scan(report: reconcile.ScanReport) -> None:
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


def print_holders(report: reconcile_holders.HoldersReport) -> None:
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


def print_tx(report: reconcile_tx.TxReport) -> None:
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
