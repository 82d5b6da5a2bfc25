"""`chainworker event create-group` and `chainworker event verify`: event collections.

create-group records and sends the transaction creating the event's group and waits for
it to settle (the worker settles it too, should this command stop). verify records a
verify request for every minted ticket of the event that is not a member yet, a batch at
a time: each batch is committed and enqueued before the next is read, so a run stopped
half-way is resumed by running it again, and a ticket asked for twice is one request.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import asdict, dataclass
from typing import Annotated
from uuid import UUID

import typer

from chainworker.config import Settings, get_settings
from chainworker.db import event_groups, tickets
from chainworker.db.event_groups import GroupRow
from chainworker.db.pool import tenant_transaction
from chainworker.db.requests import NewRequest
from chainworker.jobs.enqueue import request_operation
from chainworker.lifecycle.model import TxOp
from chainworker.lifecycle.ticket_rules import VERIFIABLE, RefusalCode
from chainworker.ops.reconcile_cli_run import (
    UsageError,
    exit_error,
    open_database,
    open_queue,
    run_command,
)
from chainworker.text import shown

EXIT_NOT_SETTLED = 1
VERIFY_BATCH = 1000
WAIT_POLL_SECONDS = 0.5
# Refusals a second ask would meet again: such a ticket is not asked for again.
LASTING_REFUSALS = [RefusalCode.NOT_A_MEMBER_MINT.value]

TenantOption = Annotated[str, typer.Option("--tenant", help="Tenant id.")]
EventOption = Annotated[str, typer.Option("--event", help="Event id.")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def _uuid(value: str, what: str) -> UUID:
    try:
        return UUID(value)
    except ValueError:
        raise UsageError(f"{what} {shown(value)} is not a UUID") from None


def _group_json(group: GroupRow, created: bool | None = None) -> dict[str, object]:
    found: dict[str, object] = {
        "event_id": str(group.event_id), "group_mint": group.group_mint,
        "status": group.status, "signature": group.tx_signature, "slot": group.slot,
        "error": group.error_message,
    }
    if created is not None:
        found["created"] = created
    return found


def create_group(
    tenant: TenantOption,
    event: EventOption,
    wait: Annotated[
        float, typer.Option(min=0, max=600, help="Seconds to wait for it to settle (0: none).")
    ] = 60.0,
    as_json: JsonOption = False,
) -> None:
    """Create the event's group on chain (once; asking again shows the one there is)."""
    settings = get_settings()

    async def run() -> tuple[GroupRow, bool]:
        tenant_id, event_id = _uuid(tenant, "tenant"), _uuid(event, "event")
        from chainworker import services
        from chainworker.jobs.worker import fund_authority
        from chainworker.pipeline import event_groups as groups
        from chainworker.pipeline.context import open_context

        pg = await services.resolve_postgres(settings)
        ctx = await open_context(settings, pg.app_dsn)
        try:
            await fund_authority(ctx)  # the authority pays the group's rent
            try:
                requested = await groups.create_group(ctx, tenant_id, event_id)
            except groups.UnknownEvent as error:
                raise UsageError(f"{error}; nothing was recorded") from None
            group = requested.group
            deadline = time.monotonic() + wait
            while group.is_live and time.monotonic() < deadline:
                await groups.settle_round(ctx)
                async with tenant_transaction(ctx.pool, tenant_id) as conn:
                    found = await event_groups.latest(conn, event_id)
                assert found is not None  # recorded above, never removed
                group = found
                if group.is_live:
                    await asyncio.sleep(WAIT_POLL_SECONDS)
            return group, requested.created
        finally:
            await ctx.close()

    group, created = run_command(run)
    if as_json:
        typer.echo(json.dumps(_group_json(group, created)))
    else:
        what = "recorded" if created else "exists"
        typer.echo(f"event {group.event_id}: group {group.group_mint} {what}, {group.status}"
                   f" ({group.tx_signature})")
    if group.status in ("failed", "expired"):
        raise exit_error(f"the group's creation {group.status}: {group.error_message or ''}"
                         "; run create-group again to record a new one")
    if group.is_live:
        typer.echo("not settled yet: the worker settles it", err=True)
        raise typer.Exit(EXIT_NOT_SETTLED)


def verify(
    tenant: TenantOption,
    event: EventOption,
    batch: Annotated[int, typer.Option(min=1, max=10_000, help="Tickets per batch.")] = (
        VERIFY_BATCH
    ),
    as_json: JsonOption = False,
) -> None:
    """Ask for every minted ticket of the event that is not a member of its group yet to
    be verified (batched, resumable: run it again to continue)."""
    settings = get_settings()

    async def run() -> VerifySummary:
        tenant_id, event_id = _uuid(tenant, "tenant"), _uuid(event, "event")
        return await verify_event(settings, tenant_id, event_id, batch, show=not as_json)

    summary = run_command(run)
    if as_json:
        typer.echo(json.dumps(asdict(summary)))
    else:
        typer.echo(f"{summary.requested} verify request(s): {summary.created} new, "
                   f"{summary.requested - summary.created} live (group {summary.group_mint})")


@dataclass(frozen=True)
class VerifySummary:
    event_id: str
    group_mint: str
    batches: int
    requested: int  # tickets asked for, this run
    created: int  # of which new requests (the others were live already)


async def verify_event(
    settings: Settings, tenant_id: UUID, event_id: UUID, batch: int, *, show: bool
) -> VerifySummary:
    """Record (and enqueue) the event's verify requests, a committed batch at a time."""
    statuses = sorted(status.value for status in VERIFIABLE)
    async with open_database(settings) as pool, open_queue(settings) as arq:
        async with tenant_transaction(pool, tenant_id) as conn:
            if await tickets.event_name(conn, event_id) is None:
                raise UsageError(f"no event {event_id} for this tenant; nothing was recorded")
            group = (await event_groups.of_events(conn, [event_id])).get(event_id)
        if group is None or not group.is_confirmed:
            state = "is being created" if group is not None else "does not exist"
            raise UsageError(
                f"the event's group {state} on chain; verify needs it confirmed "
                "(chainworker event create-group); nothing was recorded"
            )
        after: UUID | None = None
        requested = created = batches = 0
        while True:
            async with tenant_transaction(pool, tenant_id) as conn:
                page = await tickets.verifiable_ticket_ids(
                    conn, event_id, statuses, after, batch, LASTING_REFUSALS
                )
            if not page:
                break
            recorded = await request_operation(
                pool, arq, settings.queue_name, tenant_id, TxOp.VERIFY,
                [NewRequest(ticket_id, TxOp.VERIFY) for ticket_id in page], source="cli",
            )
            batches += 1
            requested += len(recorded)
            created += sum(1 for r in recorded if r.created)
            if show:
                typer.echo(f"batch {batches}: {len(recorded)} ticket(s), {requested} so far",
                           err=True)
            after = page[-1]
    return VerifySummary(str(event_id), group.group_mint, batches, requested, created)


def add_commands(event_app: typer.Typer) -> None:
    """Put create-group and verify in the `event` command group."""
    event_app.command("create-group")(create_group)
    event_app.command("verify")(verify)
