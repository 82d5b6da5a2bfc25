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
CUSTODIAL_CACHE_SIZE = 50_000


@dataclass
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
    custodial_wallets: dict[tuple[UUID, UUID], Pubkey] = field(default_factory=dict)

    def mint_key(self, tenant_id: UUID, ticket_id: UUID) -> Keypair:
        return keys.mint_keypair(self.mint_seed, tenant_id, ticket_id)

    def custodial_wallet(self, tenant_id: UUID, user_id: UUID) -> Pubkey:
        """Derived once per user (a key derivation costs more than the lookup)."""
        wallet = self.custodial_wallets.get((tenant_id, user_id))
        if wallet is None:
            if len(self.custodial_wallets) >= CUSTODIAL_CACHE_SIZE:
                self.custodial_wallets.clear()
            wallet = keys.custodial_wallet(self.custodial_seed, tenant_id, user_id)
            self.custodial_wallets[(tenant_id, user_id)] = wallet
        return wallet

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
