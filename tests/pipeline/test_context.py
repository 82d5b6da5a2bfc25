"""PipelineContext's derived addresses: the same keys the derivation gives, kept bounded;
and its repr, which shows none of the secrets it holds."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast
from uuid import uuid4

import pytest
import rich.pretty
from arq import create_pool as create_arq_pool
from arq.connections import RedisSettings
from solders.keypair import Keypair

from chainworker.chain import keys
from chainworker.chain.signer import LocalKey
from chainworker.config import load_settings
from chainworker.pipeline import context
from chainworker.pipeline.context import Keys, PipelineContext, open_context, policy_of
from chainworker.pipeline.payer_pool import PayerPool
from tests.conftest import TestDatabase

MINT_SEED = b"m" * 32
CUSTODIAL_SEED = b"c" * 32


def make_context() -> PipelineContext:
    settings = load_settings()
    no_io = cast(Any, None)  # the address cache touches no service
    authority = Keypair()
    return PipelineContext(
        settings=settings, pool=no_io, rpc=no_io, sender=no_io,
        policy=policy_of(settings),
        keys=Keys(authority, MINT_SEED, CUSTODIAL_SEED),
        payers=PayerPool(authority, (), 0),
    )


def test_mint_and_custodial_addresses_are_the_derived_ones_cached_or_not() -> None:
    ctx = make_context()
    tenant, ticket, user = uuid4(), uuid4(), uuid4()
    derived_mint = keys.mint_keypair(MINT_SEED, tenant, ticket)
    assert ctx.keys.mint_address(tenant, ticket) == derived_mint.pubkey()  # derived on a miss
    keypair, address = ctx.keys.mint_key(tenant, ticket)
    probe = b"the same key"
    assert keypair.sign_message(probe) == derived_mint.sign_message(probe)
    assert address == derived_mint.pubkey() == keypair.pubkey()
    assert ctx.keys.mint_address(tenant, ticket) == derived_mint.pubkey()  # remembered
    wallet = keys.custodial_wallet(CUSTODIAL_SEED, tenant, user)
    assert ctx.keys.custodial_wallet(tenant, user) == wallet
    assert ctx.keys.custodial_wallet(tenant, user) == wallet
    # A user id equal to a ticket id must not get the ticket's mint address.
    assert ctx.keys.custodial_wallet(tenant, ticket) == keys.custodial_wallet(
        CUSTODIAL_SEED, tenant, ticket
    ) != ctx.keys.mint_address(tenant, ticket)


def test_the_address_cache_stays_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(context, "ADDRESS_CACHE_SIZE", 5)
    ctx = make_context()
    tenant = uuid4()
    tickets = [uuid4() for _ in range(12)]
    for ticket in tickets:
        ctx.keys.mint_key(tenant, ticket)
        assert len(ctx.keys.addresses) <= 5
    for ticket in tickets:  # forgotten ones are derived again, correctly
        assert ctx.keys.mint_address(tenant, ticket) == keys.mint_keypair(
            MINT_SEED, tenant, ticket
        ).pubkey()


async def test_a_real_context_shows_none_of_its_secrets(
    fresh_db: TestDatabase, redis_url: str, tmp_path: Path
) -> None:
    authority = Keypair()
    mint_seed = "mint-seed-never-shown-0123456789abcdef"
    custodial_seed = "custodial-seed-never-shown-0123456789abcdef"
    settings = load_settings(
        state_dir=tmp_path,
        authority_keypair=str(authority),
        mint_seed=mint_seed,
        custodial_seed=custodial_seed,
        database_url="postgresql://chainworker_app:DBPASSWORD@127.0.0.1:5432/cw",
        redis_url="redis://default:REDISPASSWORD@127.0.0.1:6379/0",
        solana_rpc_urls="https://rpc.example.com/v2/RPCPATHKEY?api-key=RPCQUERYKEY",
    )
    arq = await create_arq_pool(RedisSettings.from_dsn(redis_url))
    ctx = await open_context(settings, fresh_db.app_dsn)
    try:
        assert ctx.keys.mint_seed == mint_seed.encode()
        assert isinstance(ctx.keys.authority, LocalKey)  # the same key, through libsodium
        assert ctx.keys.authority.pubkey() == authority.pubkey()
        assert ctx.keys.authority.sign_message(b"probe") == authority.sign_message(b"probe")
        secrets = [
            mint_seed, custodial_seed, str(authority), str(list(bytes(authority))),
            "DBPASSWORD", "REDISPASSWORD", "RPCPATHKEY", "RPCQUERYKEY",
        ]  # fmt: skip
        # rich's pretty printer renders the locals of rich tracebacks.
        shown_as = (
            repr(ctx), str(ctx), rich.pretty.pretty_repr(ctx), repr(ctx.settings),
            repr(ctx.keys), rich.pretty.pretty_repr(ctx.keys),
        )
        for shown in shown_as:
            for secret in secrets:
                assert secret not in shown
        assert str(authority.pubkey()) in repr(ctx)
    finally:
        await ctx.close()
        await arq.aclose()
