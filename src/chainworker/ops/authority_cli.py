"""`chainworker authority rotate --to NEW`: move every minted ticket's platform authorities
to a new key, as recorded requests the workers carry out.

The procedure (README "Rotating the platform authority"): set `AUTHORITY_*` to the new key
and `PREVIOUS_AUTHORITY_*` to the old one, restart the workers (they then sign for each
ticket with whichever key the chain shows it has), run this, and once it reports nothing
left, unset `PREVIOUS_AUTHORITY_*`.

Each ticket's mint is read from the chain, never taken from the database: those the old
key still holds something of get one `metadata_update` request whose change is the new
authority, under the key `authority:<new key>`. A second run, or one after a crash (of
this command or of a worker), finds those requests (live or confirmed) instead of making
new ones, and a ticket already rotated is not asked again. `--dry-run` reads and counts,
and records nothing. Without `--no-wait` it follows the requests with a progress bar, then
reads every mint again for the final report.

Event groups are not tickets: this command rotates each confirmed group itself, one
transaction signed by the old key and confirmed before the next, once the tickets are
asked for. It is idempotent the same way: a group is read from the chain first, and one
the old key holds nothing of is left alone; a group transaction lost in a crash is simply
made again on the next run (a copy that lands late fails: the old key holds nothing).
While a group and its tickets are rotated, a verify is signed by both keys as the chain
says (`pipeline/authorities.py`).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Annotated, Any
from uuid import UUID

import asyncpg
import typer
from arq.connections import ArqRedis
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from solders.pubkey import Pubkey

from chainworker.chain import authority, keys, token2022
from chainworker.chain.errors import ChainError
from chainworker.chain.rpc import SolanaRpc
from chainworker.chain.signer import Signer
from chainworker.chain.token2022 import TOKEN_2022_PROGRAM_ID
from chainworker.config import Settings, get_settings
from chainworker.db import event_groups, requests
from chainworker.db.pool import tenant_transaction
from chainworker.db.reconcile import MintedTicket
from chainworker.db.requests import NewRequest
from chainworker.jobs.enqueue import enqueue_committed
from chainworker.lifecycle.metadata import PUBLIC_KEY_PATTERN, authority_change
from chainworker.lifecycle.model import RequestStatus, TxOp
from chainworker.ops.reconcile import tenants_to_scan
from chainworker.ops.reconcile_cli import parse_duration, parse_uuid
from chainworker.ops.reconcile_cli_run import (
    UsageError,
    exit_error,
    open_chain,
    open_database,
    open_queue,
    run_command,
)
from chainworker.ops.reconcile_holders import minted_pages
from chainworker.text import shown

authority_app = typer.Typer(help="The platform authority: rotate it to a new key.",
                            no_args_is_help=True)
ACCOUNTS_PER_CALL = 100
POLL_SECONDS = 1.0
# What the chain shows of a ticket's mint, against the old and the new key.
TO_ROTATE, ROTATED, CLOSED, FOREIGN = "to_rotate", "rotated", "closed", "foreign"


def rotation_key(new: Pubkey) -> str:
    return f"authority:{new}"


def classify(data: bytes | None, old: Pubkey, new: Pubkey, *, ticket: bool = True) -> str:
    """One mint's state in a rotation from `old` to `new` (its account data, None: gone).
    A ticket's mint whose token was burned (a release before mints were closed) is closed:
    there is nothing left to move. A group mint has no supply at all."""
    if data is None:
        return CLOSED
    try:
        if ticket and token2022.parse_mint(data).base.supply == 0:
            return CLOSED
        if authority.held_by(data, old).anything:
            return TO_ROTATE
        if authority.held_by(data, new).anything:
            return ROTATED
    except ValueError:
        pass
    return FOREIGN


@dataclass
class Report:
    to: str
    previous: str
    dry_run: bool
    tickets: int = 0
    recorded: int = 0  # new requests (with --dry-run: those that would be)
    found: int = 0  # tickets that had a rotation request already, live or confirmed
    chain: Counter[str] = field(default_factory=Counter)  # after the run, by `classify`
    groups: Counter[str] = field(default_factory=Counter)  # event groups, by `classify`
    requests: Counter[str] = field(default_factory=Counter)  # rotation requests by status
    foreign: list[str] = field(default_factory=list)  # ticket ids, the first few

    @property
    def done(self) -> bool:
        return not any(c[TO_ROTATE] or c[FOREIGN] for c in (self.chain, self.groups))

    def as_json(self) -> dict[str, Any]:
        return {
            "to": self.to, "from": self.previous, "dry_run": self.dry_run,
            "tickets": self.tickets, "recorded": self.recorded, "found": self.found,
            "chain": {k: self.chain[k] for k in (ROTATED, TO_ROTATE, CLOSED, FOREIGN)},
            "groups": {k: self.groups[k] for k in (ROTATED, TO_ROTATE, CLOSED, FOREIGN)},
            "requests": dict(self.requests), "foreign_tickets": self.foreign, "done": self.done,
        }


async def _mint_data(rpc: SolanaRpc, mints: list[Pubkey]) -> list[bytes | None]:
    """Each mint account's data as the chain has it; None where it is gone or is no
    Token-2022 account. 100 accounts per call."""
    found: list[bytes | None] = []
    for start in range(0, len(mints), ACCOUNTS_PER_CALL):
        views = await rpc.get_accounts(mints[start:start + ACCOUNTS_PER_CALL])
        found += [v.data if v is not None and v.owner == TOKEN_2022_PROGRAM_ID else None
                  for v in views]
    return found


async def _states(
    rpc: SolanaRpc, page: list[MintedTicket], old: Pubkey, new: Pubkey
) -> list[str]:
    mints = [Pubkey.from_string(t.token_mint) for t in page]
    return [classify(data, old, new) for data in await _mint_data(rpc, mints)]


async def scan_and_record(
    pool: asyncpg.Pool, rpc: SolanaRpc, arq: ArqRedis | None, queue: str,
    old: Pubkey, new: Pubkey, *, tenant_id: UUID | None, report: Report,
    record: bool,
) -> set[UUID]:
    """Read every minted ticket's mint; with `record`, ask a rotation for those the old key
    still holds something of. The tenants that have any. Fills `report.chain`."""
    key, change = rotation_key(new), authority_change(str(new))
    tenants: set[UUID] = set()
    report.chain.clear()
    report.foreign.clear()
    async for page in minted_pages(pool, tenant_id):
        states = await _states(rpc, page, old, new)
        report.chain.update(states)
        report.foreign += [str(t.ticket_id) for t, s in zip(page, states, strict=True)
                           if s == FOREIGN][: 10 - len(report.foreign)]
        wanted = [t for t, s in zip(page, states, strict=True) if s == TO_ROTATE]
        if not wanted or not record:
            continue
        tenant = wanted[0].tenant_id
        tenants.add(tenant)
        async with tenant_transaction(pool, tenant, reason="authority rotation") as conn:
            if arq is None:  # --dry-run
                found = len(await requests.keyed_tickets(conn, key, [t.ticket_id for t in wanted]))
                created: list[UUID] = []
                report.recorded += len(wanted) - found
            else:
                items = [NewRequest(t.ticket_id, TxOp.METADATA_UPDATE, changes=change, key=key)
                         for t in wanted]
                made = await requests.record_requests(
                    conn, tenant, TxOp.METADATA_UPDATE, items, "cli")
                created = [r.request_id for r in made if r.created]
                found = len(wanted) - len(created)
                report.recorded += len(created)
        report.found += found
        if created and arq is not None:
            await enqueue_committed(arq, queue, [(r, tenant, TxOp.METADATA_UPDATE)
                                                 for r in created])
    return tenants


async def _all_tenants(pool: asyncpg.Pool, only: UUID | None) -> list[UUID]:
    return [tenant async for tenant in tenants_to_scan(pool, only)]


async def rotate_groups(
    pool: asyncpg.Pool, rpc: SolanaRpc, old: Signer, new: Pubkey, *, tenant_id: UUID | None,
    report: Report, send: bool, confirm_seconds: float = 60.0,
) -> None:
    """Read every confirmed event group; with `send`, rotate those the old key holds
    anything of, one confirmed transaction at a time. Fills `report.groups`."""
    report.groups.clear()
    for tenant in await _all_tenants(pool, tenant_id):
        async with tenant_transaction(pool, tenant, reason="authority rotation") as conn:
            mints = [Pubkey.from_string(m) for m in await event_groups.confirmed_mints(conn)]
        for mint, data in zip(mints, await _mint_data(rpc, mints), strict=True):
            state = classify(data, old.pubkey(), new, ticket=False)
            if state == TO_ROTATE and send:
                assert data is not None
                blockhash, _ = await rpc.latest_blockhash()
                signed = authority.build_rotation(
                    current=old, new=new, mint=mint, held=authority.held_by(data, old.pubkey()),
                    memo=f"cw:authority:{new}", recent_blockhash=blockhash,
                )
                await rpc.send_raw(signed.raw)
                await rpc.wait_for_confirmation(signed.signature, confirm_seconds)
                state = ROTATED
            report.groups[state] += 1


async def _request_counts(pool: asyncpg.Pool, tenants: set[UUID], key: str) -> Counter[str]:
    counts: Counter[str] = Counter()
    for tenant in tenants:
        async with tenant_transaction(pool, tenant, reason="authority rotation") as conn:
            counts.update(await requests.keyed_status_counts(conn, key))
    return counts


async def follow(
    pool: asyncpg.Pool, tenants: set[UUID], key: str, within: float, console: Console,
    shown_progress: bool,
) -> Counter[str]:
    """Wait, with a progress bar, until no rotation request is live (or `within` seconds)."""
    live = {RequestStatus.QUEUED.value, RequestStatus.SUBMITTED.value}
    deadline = time.monotonic() + within
    with Progress(TextColumn("rotating"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=console, disable=not shown_progress) as progress:
        task = progress.add_task("rotating", total=None)
        while True:
            counts = await _request_counts(pool, tenants, key)
            total = sum(counts.values())
            settled = total - sum(counts[s] for s in live)
            progress.update(task, total=total, completed=settled)
            if settled == total or time.monotonic() > deadline:
                return counts
            await asyncio.sleep(POLL_SECONDS)


def _signers(settings: Settings, to: str) -> tuple[Signer, Signer]:
    """(the new authority, the old one) from the settings, `--to` naming the new one."""
    if not PUBLIC_KEY_PATTERN.fullmatch(to):
        raise UsageError(f"--to {shown(to)} is not a base58 public key")
    new = keys.load_authority(settings)
    if str(new.pubkey()) != to:
        raise UsageError(
            f"--to {to} is not AUTHORITY_*'s key ({new.pubkey()}): set AUTHORITY_* to the new "
            "authority and PREVIOUS_AUTHORITY_* to the old one, restart the workers, then rotate"
        )
    old = keys.load_previous_authority(settings, new.pubkey())
    if old is None:
        raise UsageError("PREVIOUS_AUTHORITY_KEYPAIR (or _PKCS11_KEY_LABEL) is not set: it is "
                         "the authority the tickets have now, which signs their rotation")
    # The new key must sign: a rotation to a key nobody can use is for ever.
    probe = b"chainworker authority rotation probe"
    if not new.sign_message(probe).verify(new.pubkey(), probe):
        raise UsageError(f"the new authority {new.pubkey()} does not sign")
    return new, old


@authority_app.command("rotate")
def rotate(
    to: Annotated[str, typer.Option("--to", help="The new authority's public key: AUTHORITY_*'s.")],
    tenant: Annotated[str | None, typer.Option(help="Only this tenant's tickets.")] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Read the chain and count; record nothing.")
    ] = False,
    wait: Annotated[
        bool, typer.Option("--wait/--no-wait", help="Follow the requests until they settle.")
    ] = True,
    timeout: Annotated[str, typer.Option(help="How long to follow them (30m, 2h).")] = "1h",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Move every minted ticket's permanent delegate, close and metadata authorities to --to."""
    settings = get_settings()
    try:
        tenant_id = parse_uuid(tenant, "tenant")
        follow_for = parse_duration(timeout)
        new, old = _signers(settings, to)
    except (UsageError, ChainError) as error:
        raise exit_error(str(error)) from None
    console = Console(stderr=True)
    report = Report(to=str(new.pubkey()), previous=str(old.pubkey()), dry_run=dry_run)
    key = rotation_key(new.pubkey())

    async def run() -> None:
        async with AsyncExitStack() as opened:
            pool = await opened.enter_async_context(open_database(settings))
            rpc = await opened.enter_async_context(open_chain(settings))
            arq = None if dry_run else await opened.enter_async_context(open_queue(settings))
            tenants = await scan_and_record(
                pool, rpc, arq, settings.queue_name, old.pubkey(), new.pubkey(),
                tenant_id=tenant_id, report=report, record=True,
            )
            report.tickets = sum(report.chain.values())
            await rotate_groups(pool, rpc, old, new.pubkey(), tenant_id=tenant_id,
                                report=report, send=not dry_run)
            if dry_run or not wait:
                return
            report.requests = await follow(pool, tenants, key, follow_for, console,
                                           not as_json and console.is_terminal)
            await scan_and_record(pool, rpc, None, settings.queue_name, old.pubkey(),
                                  new.pubkey(), tenant_id=tenant_id, report=report,
                                  record=False)

    run_command(run)
    if as_json:
        typer.echo(json.dumps(report.as_json()))
    else:
        _print(report)
    if not dry_run and wait and not report.done:
        raise typer.Exit(1)


def _print(report: Report) -> None:
    chain = report.chain
    verb = "would record" if report.dry_run else "recorded"
    typer.echo(f"authority rotation {report.previous} -> {report.to}"
               + (" (dry run)" if report.dry_run else ""))
    typer.echo(f"  {report.tickets} minted ticket(s): {verb} {report.recorded} rotation(s), "
               f"{report.found} already asked")
    typer.echo(f"  on chain: {chain[ROTATED]} rotated, {chain[TO_ROTATE]} still the old key's, "
               f"{chain[CLOSED]} closed, {chain[FOREIGN]} neither key's")
    groups = report.groups
    typer.echo(f"  event groups: {groups[ROTATED]} rotated, {groups[TO_ROTATE]} still the old "
               f"key's, {groups[FOREIGN]} neither key's")
    if report.requests:
        shown_counts = ", ".join(f"{n} {s}" for s, n in sorted(report.requests.items()))
        typer.echo(f"  requests: {shown_counts}")
    if report.foreign:
        typer.echo(f"  neither key's (first {len(report.foreign)}): {', '.join(report.foreign)}")
    if not report.dry_run and report.done:
        typer.echo("  done: nothing is left with the old key; unset PREVIOUS_AUTHORITY_* and "
                   "restart the workers")


def register(app: typer.Typer) -> None:
    app.add_typer(authority_app, name="authority")
