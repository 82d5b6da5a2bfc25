"""`chainworker worker`, `chainworker enqueue ...` and `chainworker seed`."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Iterable
from typing import Annotated
from uuid import UUID

import asyncpg
import typer
from arq.connections import RedisSettings

from chainworker import services
from chainworker.chain.errors import ChainError
from chainworker.config import Settings, get_settings
from chainworker.db import roles, tickets
from chainworker.db import seed as seed_data
from chainworker.db.pool import create_pool, tenant_transaction
from chainworker.db.requests import NewRequest
from chainworker.jobs import exporter
from chainworker.jobs.codec import create_arq_pool
from chainworker.jobs.enqueue import request_operation
from chainworker.lifecycle.metadata import MetadataChange, check_change
from chainworker.lifecycle.model import BurnReason, TxOp
from chainworker.text import plain_text, shown

enqueue_app = typer.Typer(help="Record requests and queue them for the workers.")


def _fail(message: str) -> typer.Exit:
    typer.echo(f"chainworker: {message}", err=True)
    return typer.Exit(2)


async def resolve(settings: Settings) -> tuple[services.PostgresTarget, services.RedisTarget]:
    return await services.resolve_postgres(settings), await services.resolve_redis(settings)


def worker(
    metrics_port: Annotated[
        int | None, typer.Option(help="Serve /metrics on this port (0: off). Default: setting.")
    ] = None,
    burst: Annotated[bool, typer.Option(help="Exit once the queue is empty.")] = False,
) -> None:
    """Run an Arq worker: the jobs, the confirmation loop, the sweeper."""
    from chainworker.jobs.worker import make_worker

    settings = get_settings()
    try:
        pg, redis = asyncio.run(resolve(settings))
        asyncio.run(roles.check_runtime_dsn(pg.app_dsn))  # before Arq starts: one line, exit 2
    except (services.ServiceError, OSError) as error:
        raise _fail(str(error)) from None
    port = settings.metrics_port if metrics_port is None else metrics_port
    if port:
        exporter.start_metrics_server(port, settings.metrics_host)
    try:
        make_worker(settings, pg.app_dsn, redis.url, burst=burst).run()
    except ChainError as error:
        raise _fail(str(error)) from None


def _read_ids(values: list[str], what: str) -> list[UUID]:
    raw: Iterable[str] = values
    if values == ["-"]:
        try:
            raw = [line.strip() for line in sys.stdin]
        except UnicodeDecodeError:
            raise _fail(f"the {what} ids on stdin are not UTF-8; nothing was recorded") from None
    ids: list[UUID] = []
    for text in raw:
        if not text:
            continue
        try:
            ids.append(UUID(text))
        except ValueError:
            raise _fail(f"{what} {shown(text)} is not a UUID; nothing was recorded") from None
    if not ids:
        raise _fail(f"no {what} ids given")
    return ids


def _tenant_id(tenant: str) -> UUID:
    try:
        return UUID(tenant)
    except ValueError:
        raise _fail(f"tenant {shown(tenant)} is not a UUID") from None


async def _check_tickets(pool: asyncpg.Pool, tenant_id: UUID, ids: list[UUID]) -> None:
    # A request names a ticket of its own tenant: an id of another tenant's, or of none,
    # is refused here, before anything is recorded or queued.
    async with tenant_transaction(pool, tenant_id) as conn:
        found = await tickets.visible_ticket_ids(conn, ids)
    missing = [str(i) for i in dict.fromkeys(ids) if i not in found]
    if missing:
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        raise _fail(
            f"unknown ticket(s) for this tenant: {', '.join(missing[:5])}{more}; "
            "nothing was recorded"
        )


def _enqueue(tenant: str, operation: TxOp, items: list[NewRequest], as_json: bool) -> None:
    tenant_id = _tenant_id(tenant)
    settings = get_settings()

    async def run() -> list[tuple[str, str, bool]]:
        pg, redis = await resolve(settings)
        pool = await create_pool(pg.app_dsn, settings)
        arq = await create_arq_pool(RedisSettings.from_dsn(redis.url))
        try:
            await _check_tickets(pool, tenant_id, [item.ticket_id for item in items])
            recorded = await request_operation(
                pool, arq, settings.queue_name, tenant_id, operation, items, source="cli"
            )
        finally:
            await arq.aclose()
            await pool.close()
        return [(str(r.ticket_id), str(r.request_id), r.created) for r in recorded]

    try:
        rows = asyncio.run(run())
    except (services.ServiceError, OSError) as error:
        raise _fail(str(error)) from None
    except asyncpg.PostgresError as error:
        raise _fail(f"PostgreSQL: {error}") from None
    if as_json:
        found = [{"ticket_id": t, "request_id": r, "created": c} for t, r, c in rows]
        typer.echo(json.dumps(found))
    else:
        created = sum(1 for *_, c in rows if c)
        typer.echo(f"{len(rows)} {operation} request(s): {created} new, {len(rows) - created} live")


TenantOption = Annotated[str, typer.Option("--tenant", help="Tenant id.")]
TicketOption = Annotated[
    list[str], typer.Option("--ticket", help="Ticket id (repeatable), or - to read from stdin.")
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON.")]


@enqueue_app.command("mint")
def enqueue_mint(tenant: TenantOption, ticket: TicketOption, as_json: JsonOption = False) -> None:
    """Mint tickets' NFTs."""
    ids = _read_ids(ticket, "ticket")
    _enqueue(tenant, TxOp.MINT, [NewRequest(t, TxOp.MINT) for t in ids], as_json)


@enqueue_app.command("burn")
def enqueue_burn(
    tenant: TenantOption,
    ticket: TicketOption,
    reason: Annotated[str, typer.Option(help="revoke or refund")],
    as_json: JsonOption = False,
) -> None:
    """Burn tickets' NFTs (revoke or refund)."""
    if reason not in set(BurnReason):
        raise _fail(f"reason must be revoke or refund, not {shown(reason)}")
    ids = _read_ids(ticket, "ticket")
    _enqueue(tenant, TxOp.BURN, [NewRequest(t, TxOp.BURN, reason=reason) for t in ids], as_json)


def parse_change(fields: list[str], remove: list[str]) -> MetadataChange:
    """--field key=value (repeatable) and --remove key as a change, or the reason it is not."""
    values: dict[str, str] = {}
    for text in fields:
        key, sep, value = text.partition("=")
        if not sep:
            raise _fail(f"--field {shown(text)} is not key=value")
        if key in values:
            raise _fail(f"--field {shown(key)} is given twice")
        values[key] = value
    try:
        return check_change(values, remove)
    except ValueError as error:
        raise _fail(f"{error}; nothing was recorded") from None


FieldOption = Annotated[
    list[str] | None,
    typer.Option("--field", help="key=value to set (repeatable): name, uri or a custom key."),
]
RemoveOption = Annotated[
    list[str] | None, typer.Option("--remove", help="Custom key to remove (repeatable).")
]


@enqueue_app.command("metadata")
def enqueue_metadata(
    tenant: TenantOption,
    ticket: TicketOption,
    field: FieldOption = None,
    remove: RemoveOption = None,
    as_json: JsonOption = False,
) -> None:
    """Update tickets' NFT metadata: each ticket gets one update of its own."""
    change = parse_change(field or [], remove or [])
    ids = _read_ids(ticket, "ticket")
    items = [NewRequest(t, TxOp.METADATA_UPDATE, changes=change) for t in dict.fromkeys(ids)]
    _enqueue(tenant, TxOp.METADATA_UPDATE, items, as_json)
@enqueue_app.command("verify")
def enqueue_verify(
    tenant: TenantOption, ticket: TicketOption, as_json: JsonOption = False
) -> None:
    """Make minted tickets members of their event's group (see also `event verify`)."""
    ids = _read_ids(ticket, "ticket")
    _enqueue(tenant, TxOp.VERIFY, [NewRequest(t, TxOp.VERIFY) for t in ids], as_json)


@enqueue_app.command("transfer")
def enqueue_transfer(
    tenant: TenantOption,
    transfer: Annotated[
        list[str], typer.Option("--transfer", help="Transfer id (repeatable), or - for stdin.")
    ],
    as_json: JsonOption = False,
) -> None:
    """Execute accepted transfers on chain."""
    ids = _read_ids(transfer, "transfer")
    tenant_id = _tenant_id(tenant)
    settings = get_settings()

    async def tickets_of() -> list[NewRequest]:
        pg = await services.resolve_postgres(settings)
        pool = await create_pool(pg.app_dsn, settings)
        try:
            async with tenant_transaction(pool, tenant_id) as conn:
                found = await tickets.transfer_tickets(conn, ids)
        finally:
            await pool.close()
        missing = [str(i) for i in ids if i not in found]
        if missing:
            raise _fail(f"unknown transfer(s) for this tenant: {', '.join(missing[:5])}")
        return [NewRequest(found[i], TxOp.TRANSFER, transfer_id=i) for i in ids]

    try:
        items = asyncio.run(tickets_of())
    except (services.ServiceError, OSError) as error:
        raise _fail(str(error)) from None
    except asyncpg.PostgresError as error:
        raise _fail(f"PostgreSQL: {error}") from None
    _enqueue(tenant, TxOp.TRANSFER, items, as_json)


def seed(
    tickets: Annotated[int, typer.Option(min=1, max=1_000_000, help="Sold tickets to create.")],
    tenant_name: Annotated[str, typer.Option(help="The new tenant's name.")] = "Demo Tenant",
    users: Annotated[int, typer.Option(min=1, max=100_000)] = 5,
    as_json: JsonOption = False,
) -> None:
    """Create a tenant, an event, users and sold tickets (demo and test data)."""
    try:
        plain_text(tenant_name, "--tenant-name", max_length=200)
    except ValueError as error:
        raise _fail(str(error)) from None
    settings = get_settings()

    async def run() -> seed_data.Seeded:
        pg = await services.resolve_postgres(settings)
        owner = await asyncpg.connect(pg.admin_dsn)  # the ticket service's data: not ours to write
        try:
            return await seed_data.seed_tenant(
                owner, tickets=tickets, users=users, tenant_name=tenant_name
            )
        finally:
            await owner.close()

    try:
        seeded = asyncio.run(run())
    except (services.ServiceError, OSError) as error:
        raise _fail(str(error)) from None
    except asyncpg.PostgresError as error:
        raise _fail(f"PostgreSQL: {error}") from None
    if as_json:
        typer.echo(json.dumps(seeded.as_json()))
    else:
        typer.echo(f"tenant {seeded.tenant_id}: {len(seeded.ticket_ids)} tickets")


def register(app: typer.Typer) -> None:
    app.command("worker")(worker)
    app.command("seed")(seed)
    app.add_typer(enqueue_app, name="enqueue")
