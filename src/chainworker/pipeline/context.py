"""What the pipeline runs on, in parts: the keys, the fee state, the spend-limit cache,
the pool and the RPC client. Built once per process (`open_context`), closed with it.

No part holds a queue: the steps that enqueue are handed a `JobQueue` by their caller.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol
from uuid import UUID

import asyncpg
from solders.keypair import Keypair
from solders.pubkey import Pubkey

from chainworker.chain import keys
from chainworker.chain.batcher import SendBatcher
from chainworker.chain.endpoints import Observer
from chainworker.chain.rpc import SolanaRpc
from chainworker.chain.signer import Signer, fast_signer
from chainworker.config import Settings
from chainworker.db import audit
from chainworker.db.pool import Connection, create_pool
from chainworker.lifecycle.model import Policy, TxOp
from chainworker.obs import logs, metrics
from chainworker.pipeline.payer_pool import PayerPool

# Simulated compute units are reused this long before simulating again.
UNITS_TTL_SECONDS = 300.0
PRIORITY_FEE_TTL_SECONDS = 10.0
# A new or changed spending limit applies to requests prepared after this long at most.
SPEND_LIMIT_TTL_SECONDS = 10.0
# Public keys derived per (tenant, user) or (tenant, ticket) kept at most; then forgotten.
ADDRESS_CACHE_SIZE = 100_000
# Mint keypairs kept between an attempt's budget and its signature (a group's worth).
MINT_KEYPAIRS_KEPT = 4_096

# (request id, tenant id, operation): one job for one recorded request.
QueuedJob = tuple[UUID, UUID, TxOp]


class JobQueue(Protocol):
    """Where recorded requests are handed to the workers (jobs/ gives Arq's queue)."""

    async def enqueue(self, jobs: Sequence[QueuedJob]) -> int:
        """Queue the jobs; how many were new to the queue."""
        ...


@dataclass(repr=False)
class Keys:
    """The platform authority and the two derivation seeds; derived addresses remembered.

    Deriving an address costs as much as a signature, looking one up next to nothing.
    """

    authority: Signer
    mint_seed: keys.Seed
    custodial_seed: keys.Seed
    # During a rotation: the authority being replaced, for the tickets it still holds.
    previous_authority: Signer | None = None
    # (kind, tenant, user or ticket) -> a derived public key
    addresses: dict[tuple[str, UUID, UUID], Pubkey] = field(default_factory=dict)
    # (tenant, ticket) -> the mint keypair and its address, for the tickets being signed now
    mint_keypairs: dict[tuple[UUID, UUID], tuple[Signer, Pubkey]] = field(default_factory=dict)

    def __repr__(self) -> str:
        # Not the dataclass repr: it would print the seeds into any traceback or log line
        # that shows this object. The authority is shown by its public key only.
        return f"Keys(authority={self.authority.pubkey()})"

    def signer_of(self, holder: Pubkey | None) -> Signer | None:
        """The configured authority whose key is `holder`: the authority, or the one a
        rotation replaces; None when neither is."""
        for signer in (self.authority, self.previous_authority):
            if signer is not None and holder is not None and signer.pubkey() == holder:
                return signer
        return None

    def mint_key(self, tenant_id: UUID, ticket_id: UUID) -> tuple[Signer, Pubkey]:
        """The ticket's mint key and address; both remembered for a while (an attempt
        needs the address for its budget, then the key to sign)."""
        kept = self.mint_keypairs.get((tenant_id, ticket_id))
        if kept is not None:
            return kept
        keypair = keys.mint_signer(self.mint_seed, tenant_id, ticket_id)
        address = keypair.pubkey()
        if len(self.mint_keypairs) >= MINT_KEYPAIRS_KEPT:
            self.mint_keypairs.clear()
        self.mint_keypairs[(tenant_id, ticket_id)] = (keypair, address)
        self._remember(("mint", tenant_id, ticket_id), address)
        return keypair, address

    def mint_address(self, tenant_id: UUID, ticket_id: UUID) -> Pubkey:
        """The ticket's mint address: remembered, or derived (the keypair is kept too)."""
        address = self.addresses.get(("mint", tenant_id, ticket_id))
        return address if address is not None else self.mint_key(tenant_id, ticket_id)[1]

    def group_key(self, tenant_id: UUID, event_id: UUID) -> tuple[Keypair, Pubkey]:
        """The event's group mint keypair and address (one per event, derived)."""
        keypair = keys.group_keypair(self.mint_seed, tenant_id, event_id)
        return keypair, keys.public_key(keypair)

    def custodial_wallet(self, tenant_id: UUID, user_id: UUID) -> Pubkey:
        """The wallet the platform keeps for a user without a registered address."""
        wallet = self.addresses.get(("custodial", tenant_id, user_id))
        if wallet is None:
            wallet = keys.custodial_wallet(self.custodial_seed, tenant_id, user_id)
            self._remember(("custodial", tenant_id, user_id), wallet)
        return wallet

    def custodial_keypair(self, tenant_id: UUID, user_id: UUID) -> Keypair:
        """The custodial wallet's keypair: it signs only to close the user's token account
        of a burned ticket."""
        return keys.custodial_keypair(self.custodial_seed, tenant_id, user_id)

    def _remember(self, key: tuple[str, UUID, UUID], address: Pubkey) -> None:
        if len(self.addresses) >= ADDRESS_CACHE_SIZE:
            self.addresses.clear()
        self.addresses[key] = address


# What a transaction's units depend on besides its holder: its operation, and its variant:
# for a mint whether the address was prefunded (other instructions create the account,
# 1 or 0), for a burn how many accounts it closes (0, 1 or 2).
UnitsKind = tuple[TxOp, int]


@dataclass
class FeeState:
    """What the compute budget is made from: simulated units per kind of transaction and
    the recent priority fee per fee payer, each reused for a while (see pipeline/fees.py)."""

    # kind -> (units without the address search, measured at): one simulation per kind.
    simulated_units: dict[UnitsKind, tuple[int, float]] = field(default_factory=dict)
    # payer -> (unit price, read at)
    priority_fees: dict[Pubkey, tuple[int, float]] = field(default_factory=dict)

    def cached_units(self, kind: UnitsKind) -> int | None:
        entry = self.simulated_units.get(kind)
        if entry is None or time.monotonic() - entry[1] > UNITS_TTL_SECONDS:
            return None
        return entry[0]

    def remember_units(self, kind: UnitsKind, units: int) -> None:
        self.simulated_units[kind] = (units, time.monotonic())

    def cached_price(self, payer: Pubkey) -> int | None:
        entry = self.priority_fees.get(payer)
        if entry is None or time.monotonic() - entry[1] > PRIORITY_FEE_TTL_SECONDS:
            return None
        return entry[0]

    def remember_price(self, payer: Pubkey, price: int) -> None:
        self.priority_fees[payer] = (price, time.monotonic())


@dataclass
class SpendLimits:
    """Which tenants have an active chain spending limit: most have none, so their
    requests skip the sums."""

    # tenant -> (has an active chain spending limit, checked at)
    checked: dict[UUID, tuple[bool, float]] = field(default_factory=dict)

    async def applies(self, conn: Connection, tenant_id: UUID) -> bool:
        entry = self.checked.get(tenant_id)
        if entry is None or time.monotonic() - entry[1] > SPEND_LIMIT_TTL_SECONDS:
            entry = (await audit.has_spend_limit(conn), time.monotonic())
            self.checked[tenant_id] = entry
        return entry[0]


@dataclass(repr=False)
class PipelineContext:
    settings: Settings
    pool: asyncpg.Pool
    rpc: SolanaRpc
    sender: SendBatcher
    policy: Policy
    keys: Keys
    payers: PayerPool
    fees: FeeState = field(default_factory=FeeState)
    spend_limits: SpendLimits = field(default_factory=SpendLimits)
    worker_id: str = field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}")

    def __repr__(self) -> str:
        return f"PipelineContext(worker_id={self.worker_id!r}, keys={self.keys!r})"

    async def close(self) -> None:
        await self.sender.close()
        await self.rpc.close()
        await self.pool.close()


def policy_of(settings: Settings) -> Policy:
    """The lifecycle's policy, as the settings give it."""
    return Policy(
        max_retries=settings.max_retries,
        target=settings.commitment,
        rebroadcast_interval_seconds=settings.rebroadcast_interval_seconds,
    )


async def open_context(
    settings: Settings, app_dsn: str, *, observer: Observer | None = metrics.rpc_observer
) -> PipelineContext:
    """Everything the pipeline needs; raises ChainError (config) before touching anything."""
    authority = keys.load_authority(settings)
    mint_seed = keys.load_mint_seed(settings)
    custodial_seed = keys.load_custodial_seed(settings)
    if isinstance(authority, Keypair):  # an HSM key has no secret here (its PIN is registered)
        logs.register_secret(str(authority))  # the seeds were registered as they were loaded
    payers = keys.load_fee_payers(settings, authority.pubkey())  # registered as loaded
    previous = keys.load_previous_authority(settings, authority.pubkey())
    # Local keys sign through libsodium from here on (signer.LocalKey).
    authority = fast_signer(authority)
    payers = [fast_signer(payer) for payer in payers]
    previous = None if previous is None else fast_signer(previous)
    rpc = SolanaRpc.from_settings(settings, observer=observer)
    pool = await create_pool(app_dsn, settings)
    return PipelineContext(
        settings=settings,
        pool=pool,
        rpc=rpc,
        sender=SendBatcher(rpc),
        policy=policy_of(settings),
        keys=Keys(authority, mint_seed, custodial_seed, previous),
        payers=PayerPool(authority, tuple(payers), settings.fee_payer_min_lamports),
    )

