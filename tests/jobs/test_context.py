"""WorkerContext's derived addresses: the same keys the derivation gives, kept bounded."""

from __future__ import annotations

from typing import Any, cast
from uuid import uuid4

import pytest
from solders.keypair import Keypair

from chainworker.chain import keys
from chainworker.config import load_settings
from chainworker.jobs import context
from chainworker.jobs.context import WorkerContext
from chainworker.lifecycle.model import Policy

MINT_SEED = b"m" * 32
CUSTODIAL_SEED = b"c" * 32


def make_context() -> WorkerContext:
    settings = load_settings()
    no_io = cast(Any, None)  # the address cache touches no service
    return WorkerContext(
        settings=settings, pool=no_io, rpc=no_io, arq=no_io, authority=Keypair(),
        mint_seed=MINT_SEED, custodial_seed=CUSTODIAL_SEED,
        policy=Policy.from_settings(settings), sender=no_io,
    )


def test_mint_and_custodial_addresses_are_the_derived_ones_cached_or_not() -> None:
    ctx = make_context()
    tenant, ticket, user = uuid4(), uuid4(), uuid4()
    derived_mint = keys.mint_keypair(MINT_SEED, tenant, ticket)
    assert ctx.mint_address(tenant, ticket) == derived_mint.pubkey()  # derived on a miss
    keypair, address = ctx.mint_key(tenant, ticket)
    assert bytes(keypair) == bytes(derived_mint) and address == derived_mint.pubkey()
    assert ctx.mint_address(tenant, ticket) == derived_mint.pubkey()  # remembered
    wallet = keys.custodial_wallet(CUSTODIAL_SEED, tenant, user)
    assert ctx.custodial_wallet(tenant, user) == wallet
    assert ctx.custodial_wallet(tenant, user) == wallet
    # A user id equal to a ticket id must not get the ticket's mint address.
    assert ctx.custodial_wallet(tenant, ticket) == keys.custodial_wallet(
        CUSTODIAL_SEED, tenant, ticket
    ) != ctx.mint_address(tenant, ticket)


def test_the_address_cache_stays_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(context, "ADDRESS_CACHE_SIZE", 5)
    ctx = make_context()
    tenant = uuid4()
    tickets = [uuid4() for _ in range(12)]
    for ticket in tickets:
        ctx.mint_key(tenant, ticket)
        assert len(ctx.addresses) <= 5
    for ticket in tickets:  # forgotten ones are derived again, correctly
        assert ctx.mint_address(tenant, ticket) == keys.mint_keypair(
            MINT_SEED, tenant, ticket
        ).pubkey()
