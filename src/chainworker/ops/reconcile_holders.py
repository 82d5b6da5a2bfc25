"""Compare every minted ticket with its NFT on chain: supply, who holds the token, and
its membership of its event's group.

The database says which user holds a ticket and where chainworker sent its NFT
(`tickets.wallet_address`); a user's known wallets are their registered address
(`wallets`) and the custodial address derived from the custodial seed and (tenant, user).
A user who registers a new wallet after the mint leaves the NFT where it was: that is no
drift. The chain says which wallet owns the token account holding the one token. Each
disagreement is a drift, written to `blockchain_sync_log`.

Policy for `--apply` (the chain is the truth only where it names someone we know):
- holder_other_user: the token sits in the wallet of another user of the same tenant
  (a move the database missed): the ticket's user and wallet are set to that user's.
- wallet_stale: the right user holds it but `tickets.wallet_address` differs: the
  address is set to the chain's.
- everything else is flagged for a person and left as it is: an unknown holder (an
  outside wallet: possible theft or a wrong registration), a burned token for a ticket
  the database considers live (supply_zero), a live token for a ticket the database
  burned (not_burned), a missing or foreign mint account, no holder at all, and a ticket
  the database says is verified whose mint is not a member of its event's group
  (not_a_member: its authenticity cannot be shown on chain).

A burned ticket agrees with a mint of supply 0 (a mint made without a close authority) and
with no mint account at all (its burn closed it).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any
from uuid import UUID

import asyncpg
from solders.pubkey import Pubkey

from chainworker.chain import keys
from chainworker.chain.errors import UNEXPECTED_ACCOUNT, ChainError
from chainworker.chain.rpc import SolanaRpc
from chainworker.db import audit
from chainworker.db import reconcile as db_reconcile
from chainworker.db.pool import tenant_transaction
from chainworker.db.reconcile import MintedTicket
from chainworker.ops.reconcile import tenants_to_scan

PAGE_SIZE = 1000
CHAIN_CALLS_IN_FLIGHT = 16
# Ticket statuses a burn leaves (lifecycle.ticket_rules.BURN_RESULT): supply 0 expected.
BURNED_STATUSES = frozenset({"revoked", "refunded"})
SYNC_OPERATION = "reconcile_holder"


class DriftKind(StrEnum):
    MINT_MISSING = "mint_missing"
    NOT_A_MINT = "not_a_mint"
    SUPPLY_ZERO = "supply_zero"
    NOT_BURNED = "not_burned"
    NO_HOLDER = "no_holder"
    HOLDER_OTHER_USER = "holder_other_user"
    HOLDER_UNKNOWN = "holder_unknown"
    WALLET_STALE = "wallet_stale"
    NOT_A_MEMBER = "not_a_member"

    @property
    def recordable(self) -> bool:
        """May `--apply` record the chain's truth for this kind (see the module policy)?"""
        return self in (DriftKind.HOLDER_OTHER_USER, DriftKind.WALLET_STALE)


@dataclass(frozen=True, slots=True)
class Drift:
    ticket: MintedTicket
    kind: DriftKind
    expected_holder: str | None
    chain_holder: str | None
    chain_supply: int | None
    holder_user_id: UUID | None = None  # the tenant's user whose wallet holds it, if any
    recorded: bool = False

    def as_json(self) -> dict[str, Any]:
        return {
            "tenant_id": str(self.ticket.tenant_id),
            "ticket_id": str(self.ticket.ticket_id),
            "token_mint": self.ticket.token_mint,
            "ticket_status": self.ticket.status,
            "kind": self.kind.value,
            "db_user_id": str(self.ticket.user_id) if self.ticket.user_id else None,
            "db_wallet": self.ticket.wallet_address,
            "expected_holder": self.expected_holder,
            "chain_holder": self.chain_holder,
            "chain_supply": self.chain_supply,
            "holder_user_id": str(self.holder_user_id) if self.holder_user_id else None,
            "verified": self.ticket.verified,
            "group_mint": self.ticket.group_mint,
            "recordable": self.kind.recordable,
            "recorded": self.recorded,
        }


@dataclass
class HoldersReport:
    checked: int = 0
    drifts: list[Drift] = field(default_factory=list)
    applied: bool = False

    def as_json(self) -> dict[str, Any]:
        return {
            "summary": {
                "checked": self.checked,
                "drifts": len(self.drifts),
                "recorded": sum(1 for d in self.drifts if d.recorded),
                "mode": "apply" if self.applied else "dry-run",
            },
            "drifts": [d.as_json() for d in self.drifts],
        }


class TenantWallets:
    """Every known wallet of a tenant's users: registered ones and custodial ones."""

    def __init__(self, custodial_seed: keys.Seed) -> None:
        self._seed = custodial_seed
        self._owners: dict[UUID, dict[str, UUID]] = {}

    async def owners(self, pool: asyncpg.Pool, tenant_id: UUID) -> dict[str, UUID]:
        if tenant_id not in self._owners:
            async with tenant_transaction(pool, tenant_id, reason="reconcile holders") as conn:
                users = await db_reconcile.tenant_user_ids(conn, tenant_id)
                registered = await db_reconcile.registered_wallets(conn)
            owners: dict[str, UUID] = {}
            for user_id in users:
                owners[str(keys.custodial_wallet(self._seed, tenant_id, user_id))] = user_id
                if user_id in registered:
                    owners[registered[user_id]] = user_id
            self._owners[tenant_id] = owners
        return self._owners[tenant_id]

    def expected(self, ticket: MintedTicket) -> str | None:
        """Where the NFT should be: where it was sent, else the user's wallet of today."""
        if ticket.wallet_address is not None:
            return ticket.wallet_address
        if ticket.user_id is None:
            return None
        return ticket.registered_wallet or str(
            keys.custodial_wallet(self._seed, ticket.tenant_id, ticket.user_id)
        )


async def minted_pages(
    pool: asyncpg.Pool, tenant_id: UUID | None
) -> AsyncIterator[list[MintedTicket]]:
    """Minted tickets (of one tenant, or all), a keyset page at a time, each tenant read
    under its own context."""
    async for tenant in tenants_to_scan(pool, tenant_id):
        after: UUID | None = None
        while True:
            async with tenant_transaction(pool, tenant, reason="reconcile holders") as conn:
                page = await db_reconcile.minted_tickets(conn, PAGE_SIZE, after)
            if page:
                yield page
            if len(page) < PAGE_SIZE:
                break
            after = page[-1].ticket_id


async def check_ticket(
    rpc: SolanaRpc, ticket: MintedTicket, expected: str | None, owners: dict[str, UUID]
) -> Drift | None:
    """The drift between one minted ticket and its mint on chain; None when they agree."""

    def drift(kind: DriftKind, **chain: Any) -> Drift:
        return Drift(ticket, kind, expected, **chain)

    try:
        mint = Pubkey.from_string(ticket.token_mint)
    except ValueError:
        return drift(DriftKind.NOT_A_MINT, chain_holder=None, chain_supply=None)
    try:
        state = await rpc.get_mint_state(mint)
    except ChainError as error:
        if error.kind != UNEXPECTED_ACCOUNT:
            raise
        return drift(DriftKind.NOT_A_MINT, chain_holder=None, chain_supply=None)
    burned_in_db = ticket.status in BURNED_STATUSES
    if state is None:
        if burned_in_db:
            return None  # its burn closed the mint (mints with a close authority)
        return drift(DriftKind.MINT_MISSING, chain_holder=None, chain_supply=None)
    if state.supply == 0:
        if burned_in_db:
            return None
        return drift(DriftKind.SUPPLY_ZERO, chain_holder=None, chain_supply=0)
    if burned_in_db:
        return drift(DriftKind.NOT_BURNED, chain_holder=None, chain_supply=state.supply)
    member = state.groups.member
    if ticket.verified and (
        member is None or ticket.group_mint is None or str(member.group) != ticket.group_mint
    ):
        return drift(DriftKind.NOT_A_MEMBER, chain_holder=None, chain_supply=state.supply)
    holder = await rpc.get_token_holder(mint)
    if holder is None:
        return drift(DriftKind.NO_HOLDER, chain_holder=None, chain_supply=state.supply)
    owner = str(holder[0])
    user = owners.get(owner)  # whose known wallet holds it, if anyone's
    if user is not None and user != ticket.user_id:
        return drift(
            DriftKind.HOLDER_OTHER_USER, chain_holder=owner, chain_supply=state.supply,
            holder_user_id=user,
        )
    if owner == ticket.wallet_address:
        return None
    if user is not None:  # one of the ticket's user's wallets, but not the one recorded
        return drift(DriftKind.WALLET_STALE, chain_holder=owner, chain_supply=state.supply)
    return drift(DriftKind.HOLDER_UNKNOWN, chain_holder=owner, chain_supply=state.supply)


async def record(pool: asyncpg.Pool, found: Drift, *, apply: bool) -> Drift:
    """Write the drift to blockchain_sync_log; with apply, record the chain's truth if allowed."""
    ticket = found.ticket
    recorded = False
    async with tenant_transaction(
        pool, ticket.tenant_id, actor_type="system", reason=f"reconcile: {found.kind}",
        source="reconcile",
    ) as conn:
        if apply and found.kind.recordable and found.chain_holder is not None:
            user_id = found.holder_user_id or ticket.user_id
            recorded = await db_reconcile.record_holder(
                conn, ticket.ticket_id, user_id, found.chain_holder, ticket.token_mint,
                ticket.user_id,
            )
        await audit.log_sync(
            conn, ticket.tenant_id, entity_type="ticket", entity_id=ticket.ticket_id,
            ticket_id=ticket.ticket_id, operation=SYNC_OPERATION,
            status="reconciled" if recorded else "pending",
            details={**found.as_json(), "recorded": recorded},
            error=None if recorded else f"drift: {found.kind}",
        )
    return Drift(
        ticket, found.kind, found.expected_holder, found.chain_holder, found.chain_supply,
        found.holder_user_id, recorded,
    )


async def reconcile_holders(
    pool: asyncpg.Pool,
    rpc: SolanaRpc,
    custodial_seed: keys.Seed,
    *,
    tenant_id: UUID | None = None,
    apply: bool = False,
    on_progress: Callable[[int], None] | None = None,
) -> HoldersReport:
    report = HoldersReport(applied=apply)
    wallets = TenantWallets(custodial_seed)
    gate = asyncio.Semaphore(CHAIN_CALLS_IN_FLIGHT)

    async def one(ticket: MintedTicket) -> Drift | None:
        owners = await wallets.owners(pool, ticket.tenant_id)
        async with gate:
            found = await check_ticket(rpc, ticket, wallets.expected(ticket), owners)
        return await record(pool, found, apply=apply) if found is not None else None

    async for page in minted_pages(pool, tenant_id):
        # Load each tenant's wallets once, before the page fans out.
        for tenant in {t.tenant_id for t in page}:
            await wallets.owners(pool, tenant)
        results = await asyncio.gather(*(one(ticket) for ticket in page))
        report.checked += len(page)
        report.drifts.extend(d for d in results if d is not None)
        if on_progress is not None:
            on_progress(len(page))
    return report
