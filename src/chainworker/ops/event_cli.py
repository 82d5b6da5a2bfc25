"""`chainworker event update-metadata`: one metadata update per minted ticket of an event;
the `event` command group, which also holds create-group and verify (`event_groups_cli`).

When an event changes (it moved: a new uri), an operator records the same change for every
ticket of the event whose NFT can still be updated (ticket_rules: minted, active,
transferred, checked_in, used), in batches of recorded requests, each batch committed and
then queued. The requests carry one key per (event, change): a second run, or a run
resumed after an interruption, finds the requests already made for a ticket (live or
confirmed) instead of making new ones, and records only for the tickets that have none
(those whose update failed or was refused get a new one). `--dry-run` counts and records
nothing.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from dataclasses import dataclass
from typing import Annotated
from uuid import UUID

import asyncpg
import typer
from arq.connections import ArqRedis, RedisSettings
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from chainworker import services
from chainworker.config import get_settings
from chainworker.db import requests, tickets
from chainworker.db.pool import create_pool, tenant_transaction
from chainworker.db.requests import NewRequest
from chainworker.jobs.codec import create_arq_pool
from chainworker.jobs.enqueue import enqueue_committed
from chainworker.lifecycle import ticket_rules
from chainworker.lifecycle.metadata import MetadataChange
from chainworker.lifecycle.model import TxOp
from chainworker.ops import event_groups_cli
from chainworker.ops.worker_cli import (
    FieldOption,
    JsonOption,
    RemoveOption,
    TenantOption,
    _fail,
    _tenant_id,
    parse_change,
    resolve,
)
from chainworker.text import shown

event_app = typer.Typer(
    help="Operations over every ticket of an event: metadata, its group, verification.",
    no_args_is_help=True,
)

# The statuses whose NFT a metadata update may change, as the rules say.
UPDATABLE = sorted(s.value for s in ticket_rules.METADATA_UPDATABLE)
DEFAULT_BATCH = 500


def change_key(event_id: UUID, change: MetadataChange) -> str:
    """The requests' key: the same event and change give the same key, on every run."""
    canonical = json.dumps(change.as_json(), sort_keys=True, separators=(",", ":"))
    digest = hashlib.sha256(f"{event_id}\n{canonical}".encode()).hexdigest()[:32]
    return f"event:{digest}"


@dataclass
class Tally:
    tickets: int = 0
    recorded: int = 0  # new requests (or, with --dry-run, those that would be)
    found: int = 0  # tickets that already had a request of this change, live or confirmed


async def event_total(pool: asyncpg.Pool, tenant_id: UUID, event_id: UUID) -> int:
    """How many of the event's tickets can be updated; LookupError for an event the tenant
    does not have."""
    async with tenant_transaction(pool, tenant_id, reason="event metadata update") as conn:
        if not await tickets.event_exists(conn, event_id):
            raise LookupError(f"no event {event_id} for this tenant")
        return await tickets.count_event_tickets(conn, event_id, UPDATABLE)


async def update_event(
    pool: asyncpg.Pool,
    arq: ArqRedis,
    queue_name: str,
    tenant_id: UUID,
    event_id: UUID,
    change: MetadataChange,
    *,
    batch_size: int,
    dry_run: bool,
    progress: Progress | None = None,
) -> Tally:
    """Record (or count) the event's updates, batch by batch; each batch is queued once it
    is committed."""
    key = change_key(event_id, change)
    total = await event_total(pool, tenant_id, event_id)
    task = progress.add_task("tickets", total=total) if progress is not None else None
    tally = Tally()
    after: UUID | None = None
    while True:
        async with tenant_transaction(pool, tenant_id, reason="event metadata update") as conn:
            page = await tickets.event_ticket_page(conn, event_id, UPDATABLE, after, batch_size)
            if not page:
                break
            if dry_run:
                found = len(await requests.keyed_tickets(conn, key, page))
                created: list[UUID] = []
                tally.recorded += len(page) - found
            else:
                items = [
                    NewRequest(t, TxOp.METADATA_UPDATE, changes=change, key=key) for t in page
                ]
                recorded = await requests.record_requests(
                    conn, tenant_id, TxOp.METADATA_UPDATE, items, "cli"
                )
                created = [r.request_id for r in recorded if r.created]
                found = len(page) - len(created)
                tally.recorded += len(created)
        if created:
            await enqueue_committed(
                arq, queue_name, [(r, tenant_id, TxOp.METADATA_UPDATE) for r in created]
            )
        tally.tickets += len(page)
        tally.found += found
        after = page[-1]
        if progress is not None and task is not None:
            progress.advance(task, len(page))
    return tally


@event_app.command("update-metadata")
def update_metadata(
    tenant: TenantOption,
    event: Annotated[str, typer.Option("--event", help="Event id.")],
    field: FieldOption = None,
    remove: RemoveOption = None,
    batch_size: Annotated[
        int, typer.Option(min=1, max=5000, help="Tickets recorded per transaction.")
    ] = DEFAULT_BATCH,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Count what would be recorded; record nothing.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Update one change (e.g. --field uri=...) on every minted ticket of an event."""
    tenant_id = _tenant_id(tenant)
    try:
        event_id = UUID(event)
    except ValueError:
        raise _fail(f"event {shown(event)} is not a UUID") from None
    change = parse_change(field or [], remove or [])
    settings = get_settings()
    console = Console(stderr=True)  # the progress; stdout keeps the result

    async def run() -> Tally:
        pg, redis = await resolve(settings)
        pool = await create_pool(pg.app_dsn, settings)
        arq = await create_arq_pool(RedisSettings.from_dsn(redis.url))
        try:
            await event_total(pool, tenant_id, event_id)  # refused before any progress shows
            with Progress(
                TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                TimeElapsedColumn(), console=console, disable=as_json,
            ) as progress:
                return await update_event(
                    pool, arq, settings.queue_name, tenant_id, event_id, change,
                    batch_size=batch_size, dry_run=dry_run, progress=progress,
                )
        finally:
            await arq.aclose()
            await pool.close()

    try:
        tally = asyncio.run(run())
    except LookupError as error:
        raise _fail(f"{error}; nothing was recorded") from None
    except (services.ServiceError, OSError) as error:
        raise _fail(str(error)) from None
    except asyncpg.PostgresError as error:
        raise _fail(f"PostgreSQL: {error}") from None
    if as_json:
        typer.echo(json.dumps({
            "event_id": str(event_id), "key": change_key(event_id, change),
            "tickets": tally.tickets, "recorded": tally.recorded, "found": tally.found,
            "dry_run": dry_run,
        }))
    else:
        verb = "would record" if dry_run else "recorded"
        typer.echo(
            f"{tally.tickets} ticket(s) of event {event_id}: {verb} {tally.recorded} "
            f"update(s); {tally.found} already asked for this change"
        )


def register(app: typer.Typer) -> None:
    event_groups_cli.add_commands(event_app)
    app.add_typer(event_app, name="event")
