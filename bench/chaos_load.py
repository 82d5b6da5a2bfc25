"""The campaign's load: what the ticket service and operators ask for, through the three ways
in (the API, the outbox, the CLI), retried through outages as a real caller does."""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import sys
from collections import defaultdict
from collections.abc import Awaitable
from typing import Any
from uuid import UUID

import asyncpg
import httpx

from chainworker.client import ApiError, ChainworkerClient
from chainworker.lifecycle.model import BurnReason
from chaos_stack import Ask, Campaign, Tenant

SUBMITS_IN_FLIGHT = 16


async def owner_execute(campaign: Campaign, query: str, *args: Any) -> Any:
    """Run a statement as the ticket service would: retried until the database answers
    (a refused statement is a finding, raised at once)."""
    last: BaseException | None = None
    for attempt in range(120):
        try:
            async with campaign.owner_slots:
                conn = await asyncpg.connect(campaign.admin_dsn, timeout=5)
                try:
                    return await conn.fetch(query, *args)
                finally:
                    await conn.close()
        except (OSError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError,
                asyncpg.CannotConnectNowError, asyncpg.AdminShutdownError,
                asyncpg.TooManyConnectionsError, asyncpg.InternalClientError,
                TimeoutError) as error:
            last = error
            await asyncio.sleep(min(2.0, 0.2 * (attempt + 1)))
    raise RuntimeError(f"the database did not answer ({last!r}): {query[:60]}")


async def ask_api(campaign: Campaign, client: ChainworkerClient, ask: Ask) -> None:
    key = f"chaos-{ask.operation}-{ask.transfer or ask.ticket}"
    for _ in range(120):  # the client retries within; this outlasts outages
        try:
            if ask.operation == "mint":
                accepted = await client.mint(ask.ticket, idempotency_key=key)
            elif ask.operation == "burn":
                assert ask.reason is not None
                reason = BurnReason(ask.reason)
                accepted = await client.burn(ask.ticket, reason, idempotency_key=key)
            else:
                assert ask.transfer is not None
                accepted = await client.execute_transfer(ask.transfer, idempotency_key=key)
            ask.request_id = accepted.request_id
            return
        except ApiError as error:
            if error.status < 500 and error.status not in (409, 429):
                campaign.errors.append(f"API refused {ask.operation} {ask.ticket}: {error}")
                return
        except (httpx.HTTPError, OSError):
            pass
        await asyncio.sleep(1.0)
    campaign.errors.append(f"API never accepted {ask.operation} {ask.ticket}")


async def ask_outbox(campaign: Campaign, asks: list[Ask]) -> None:
    rows = [
        (a.tenant, "ticket_transfer" if a.transfer else "ticket", a.transfer or a.ticket,
         f"nft.{a.operation}_requested", json.dumps({"reason": a.reason} if a.reason else {}))
        for a in asks
    ]
    await owner_execute(
        campaign,
        """INSERT INTO outbox (tenant_id, aggregate_type, aggregate_id, event_type, payload)
           SELECT * FROM unnest($1::uuid[], $2::text[], $3::uuid[], $4::text[], $5::jsonb[])""",
        [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows], [r[3] for r in rows],
        [r[4] for r in rows],
    )


async def ask_cli(campaign: Campaign, asks: list[Ask]) -> None:
    first = asks[0]
    args = ["enqueue", first.operation, "--tenant", str(first.tenant), "--json"]
    if first.operation == "transfer":
        args += ["--transfer", "-"]
        ids = [str(a.transfer) for a in asks]
    else:
        args += ["--ticket", "-"]
        ids = [str(a.ticket) for a in asks]
        if first.reason:
            args += ["--reason", first.reason]
    for _ in range(120):
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "chainworker", *args, env=campaign.env,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, _err = await process.communicate("\n".join(ids).encode())
        if process.returncode == 0:
            found = {row["ticket_id"]: row["request_id"] for row in json.loads(out)}
            for ask in asks:
                ask.request_id = UUID(found[str(ask.ticket)])
            return
        await asyncio.sleep(1.0)  # a service was down: asked again, as an operator would
    campaign.errors.append(f"the CLI never accepted {len(asks)} {first.operation} request(s)")


async def submit(campaign: Campaign, clients: dict[UUID, ChainworkerClient], asks: list[Ask],
                 rng: random.Random) -> None:
    """Ask for `asks` (one operation, one tenant) through the three ways in, mixed."""
    by_channel: dict[str, list[Ask]] = defaultdict(list)
    for ask in asks:
        ask.channel = rng.choice(("api", "outbox", "cli"))
        by_channel[ask.channel].append(ask)
    campaign.asks.extend(asks)
    jobs: list[Awaitable[None]] = []
    if by_channel["outbox"]:
        jobs.append(ask_outbox(campaign, by_channel["outbox"]))
    if by_channel["cli"]:
        jobs.append(ask_cli(campaign, by_channel["cli"]))
    jobs += [ask_api(campaign, clients[a.tenant], a) for a in by_channel["api"]]
    await asyncio.gather(*jobs)


async def drive_load(campaign: Campaign, rng: random.Random, load_seconds: float) -> None:
    """Mint every ticket (spread over `load_seconds`), then resell some along chains of
    transfers and burn others, each as soon as its mint is confirmed."""
    clients = {t.id: ChainworkerClient(campaign.fleet.api_url, t.token, max_attempts=3)
               for t in campaign.tenants}
    try:
        resale: dict[UUID, Tenant] = {}
        burns: dict[UUID, Tenant] = {}
        batches: list[tuple[Tenant, list[UUID]]] = []
        for tenant in campaign.tenants:
            tickets = list(tenant.tickets)
            rng.shuffle(tickets)
            cut = max(1, len(tickets) * 15 // 100)
            resale.update({t: tenant for t in tickets[:cut]})
            burns.update({t: tenant for t in tickets[cut : cut + max(1, len(tickets) // 10)]})
            batches += [(tenant, tickets[i : i + 25]) for i in range(0, len(tickets), 25)]
        rng.shuffle(batches)
        pause = load_seconds / max(1, len(batches))
        follow_ups = asyncio.create_task(follow_up(campaign, clients, rng, resale, burns))
        # Batches go out on schedule, whatever the ones before are still waiting for (an
        # outage holds callers up; it does not stop new ones from calling).
        gate = asyncio.Semaphore(SUBMITS_IN_FLIGHT)

        async def one(tenant: Tenant, tickets: list[UUID]) -> None:
            async with gate:
                asks = [Ask("", "mint", tenant.id, t) for t in tickets]
                await submit(campaign, clients, asks, rng)

        sent: list[asyncio.Task[None]] = []
        for tenant, tickets in batches:
            sent.append(asyncio.create_task(one(tenant, tickets)))
            await asyncio.sleep(pause)
        await asyncio.gather(*sent)
        await follow_ups
    finally:
        for client in clients.values():
            await client.aclose()


async def follow_up(
    campaign: Campaign, clients: dict[UUID, ChainworkerClient], rng: random.Random,
    resale: dict[UUID, Tenant], burns: dict[UUID, Tenant],
) -> None:
    """Resale chains and burns for tickets whose mint is confirmed, until all are asked."""
    waiting = set(resale) | set(burns)
    while waiting:
        rows = await owner_execute(
            campaign,
            "SELECT id FROM tickets WHERE id = ANY($1::uuid[]) AND token_mint IS NOT NULL",
            list(waiting),
        )
        ready = [row["id"] for row in rows]
        for ticket in ready:
            waiting.discard(ticket)
        chain_asks: dict[UUID, list[Ask]] = defaultdict(list)
        burn_asks: dict[tuple[UUID, str], list[Ask]] = defaultdict(list)
        for ticket in ready:
            if ticket in resale:
                tenant = resale[ticket]
                for ask in await resale_chain(campaign, tenant, ticket, rng):
                    chain_asks[tenant.id].append(ask)
            else:
                tenant = burns[ticket]
                reason = rng.choice(("revoke", "refund"))
                burn_asks[(tenant.id, reason)].append(Ask("", "burn", tenant.id, ticket,
                                                          reason=reason))
        # The links of a chain are asked back to back, each once the one before it is
        # accepted (through the outbox that takes a relay round), each through any way in.
        chains: dict[UUID, list[Ask]] = defaultdict(list)
        for asks in chain_asks.values():
            for ask in asks:
                chains[ask.ticket].append(ask)
        await asyncio.gather(
            *(resell(campaign, clients, links, rng) for links in chains.values()),
            *(submit(campaign, clients, asks, rng) for asks in burn_asks.values()),
        )
        if waiting:
            await asyncio.sleep(1.0)


async def resell(campaign: Campaign, clients: dict[UUID, ChainworkerClient], links: list[Ask],
                 rng: random.Random) -> None:
    for ask in links:
        await submit(campaign, clients, [ask], rng)
        for _ in range(300):
            rows = await owner_execute(
                campaign, "SELECT 1 FROM chain_requests WHERE transfer_id = $1", ask.transfer
            )
            if rows:
                break
            await asyncio.sleep(0.2)


async def resale_chain(campaign: Campaign, tenant: Tenant, ticket: UUID,
                       rng: random.Random) -> list[Ask]:
    """Two or three accepted transfers A -> B -> C (-> D), recorded as the ticket service does."""
    holder = tenant.holder[ticket]
    others = [u for u in tenant.users if u != holder]
    rng.shuffle(others)
    path = [holder, *others[: rng.choice((2, 3))]]
    asks = []
    for sender, recipient in itertools.pairwise(path):
        [row] = await owner_execute(
            campaign,
            """INSERT INTO ticket_transfers (tenant_id, ticket_id, from_user_id, to_user_id,
                                             status, accepted_at)
               VALUES ($1, $2, $3, $4, 'accepted', now()) RETURNING id""",
            tenant.id, ticket, sender, recipient,
        )
        asks.append(Ask("", "transfer", tenant.id, ticket, transfer=row["id"]))
    return asks
