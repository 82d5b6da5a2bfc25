"""What every job of a worker process shares: settings, the pool, the RPC client, keys."""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass, field
from uuid import UUID

import asyncpg
from arq.connections import ArqRedis
from solders.keypair import Keypair
from solders.pubkey import Pubkey

from chainworker.chain import keys
from chainworker.chain.batcher import SendBatcher
from chainworker.chain.rpc import SolanaRpc
from chainworker.config import Settings
from chainworker.db import audit
from chainworker.db.pool import Connection
from chainworker.lifecycle.model import Policy

# Simulated compute units are reused this long before simulating again.
UNITS_TTL_SECONDS = 300.0
PRIORITY_FEE_TTL_SECONDS = 10.0
# A new or changed spending limit applies to requests prepared after this long at most.
SPEND_LIMIT_TTL_SECONDS = 10.0
# Public keys derived per (tenant, user) or (tenant, ticket) kept at most; then forgotten.
ADDRESS_CACHE_SIZE = 100_000


@dataclass(repr=False)
class WorkerContext:
    settings: Settings
    pool: asyncpg.Pool
    rpc: SolanaRpc
    arq: ArqRedis
    authority: Keypair
    mint_seed: bytes
    custodial_seed: bytes
    policy: Policy
    sender: SendBatcher
    worker_id: str = field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}")
    # op -> (units, measured at): simulation is per operation kind, not per transaction.
    simulated_units: dict[str, tuple[int, float]] = field(default_factory=dict)
    priority_fee: tuple[int, float] | None = None
    # tenant -> (has an active chain spending limit, checked at)
    spend_limits: dict[UUID, tuple[bool, float]] = field(default_factory=dict)
    # (kind, tenant, user or ticket) -> a derived public key: deriving one costs as much
    # as a signature, looking it up next to nothing.
    addresses: dict[tuple[str, UUID, UUID], Pubkey] = field(default_factory=dict)

    def __repr__(self) -> str:
        # Not the dataclass repr: it would print the seeds into any traceback or log line
        # that shows this object. The authority is shown by its public key only.
        return f"WorkerContext(worker_id={self.worker_id!r}, authority={self.authority.pubkey()})"

    def mint_key(self, tenant_id: UUID, ticket_id: UUID) -> tuple[Keypair, Pubkey]:
        """The ticket's mint keypair and address; the address is remembered."""
        keypair = keys.mint_keypair(self.mint_seed, tenant_id, ticket_id)
        address = keypair.pubkey()
        self._remember(("mint", tenant_id, ticket_id), address)
        return keypair, address

    def mint_address(self, tenant_id: UUID, ticket_id: UUID) -> Pubkey:
        """The ticket's mint address: remembered from signing, or derived."""
        address = self.addresses.get(("mint", tenant_id, ticket_id))
        return address if address is not None else self.mint_key(tenant_id, ticket_id)[1]

    def custodial_wallet(self, tenant_id: UUID, user_id: UUID) -> Pubkey:
        """The wallet the platform keeps for a user without a registered address."""
        wallet = self.addresses.get(("custodial", tenant_id, user_id))
        if wallet is None:
            wallet = keys.custodial_wallet(self.custodial_seed, tenant_id, user_id)
            self._remember(("custodial", tenant_id, user_id), wallet)
        return wallet

    def _remember(self, key: tuple[str, UUID, UUID], address: Pubkey) -> None:
        if len(self.addresses) >= ADDRESS_CACHE_SIZE:
            self.addresses.clear()
        self.addresses[key] = address

    async def tenant_has_spend_limit(self, conn: Connection, tenant_id: UUID) -> bool:
        """Whether spending must be checked: most tenants have no limit, so skip the sums."""
        entry = self.spend_limits.get(tenant_id)
        if entry is None or time.monotonic() - entry[1] > SPEND_LIMIT_TTL_SECONDS:
            entry = (await audit.has_spend_limit(conn), time.monotonic())
            self.spend_limits[tenant_id] = entry
        return entry[0]

    def cached_units(self, op: str) -> int | None:
        entry = self.simulated_units.get(op)
        if entry is None or time.monotonic() - entry[1] > UNITS_TTL_SECONDS:
            return None
        return entry[0]

    def remember_units(self, op: str, units: int) -> None:
        self.simulated_units[op] = (units, time.monotonic())
