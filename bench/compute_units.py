"""Compute units: what unit-limit margin and headroom never fail, per operation and edge.

Run: python bench/compute_units.py [--holders 250] [--edge 60] [--slot-ms 400]

Starts a localnet subprocess and builds the worker's own transactions the way the
worker does: `pipeline.build.build_attempt` (name, URI template, fields, prefunded
mint) with the budget from `pipeline.fees.compute_budget`, which simulates ONE
unbudgeted transaction of an operation kind and caches its units (a fresh cache per
edge below, so each edge's first transaction is the simulated one). Every transaction
is also simulated unbudgeted on its own, then all are sent with today's limit
(`compute_unit_margin` x simulated + `compute_unit_headroom`, the settings' defaults) and
each one's `meta.computeUnitsConsumed` is read back with getTransaction.

Edges (random holders throughout; `--holders` transactions for the ordinary edge of
each operation, `--edge` for the others):
  mint      ordinary metadata; name and URI at their maximum lengths (32 / 117 bytes,
            symbol 10 bytes); a prefunded mint address (top-up + allocate + assign
            instead of CreateAccount); prefunded with maximum metadata
  transfer  to a new holder (creates the account); maximum-metadata mint to a new
            holder; back to a holder whose account exists (empty)
  burn      ordinary mint (after its transfers); maximum-metadata mint; prefunded
            maximum-metadata mint (never transferred)

Prints, per operation and edge: the cached simulated units, the range of each
transaction's own simulation and of what it consumed, the largest consumed minus the
cached figure, the limit requested today and how many would have exceeded it, and for
margins 1.0 / 1.02 / 1.05 / 1.1 / 1.2 the smallest headroom with which none would have
exceeded its limit; the tightest of those pairs and the units per transaction it saves
against today's limit. Two rows per operation pool its edges: cached = the ordinary
edge's simulation, and the worst case, cached = the smallest simulation of any of its
transactions (a 5-minute cache is set by whichever transaction of the kind comes first).

Then the tail model: the spread is the associated token program's address search,
1,500 units per bump tried past 255 (`base` = consumed minus that, constant per edge),
and a random address needs k or more extra bumps with probability 2^-k, so the largest
figure seen grows with the number of transactions and no sample shows "never". Per
operation it prints the headroom margin 1.0 needs for at most 1e-6 failures per
transaction when the cached simulation is the cheapest possible, and the failure rate
of today's limit in that case. Takes about 10 s.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import httpx
from solders.hash import Hash
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from spl.token.constants import ASSOCIATED_TOKEN_PROGRAM_ID

from chainworker.chain import nft
from chainworker.chain.rpc import SolanaRpc
from chainworker.chain.token2022 import TOKEN_2022_PROGRAM_ID
from chainworker.config import Settings
from chainworker.db import tickets
from chainworker.lifecycle.model import TxOp
from chainworker.localnet.process import start_localnet
from chainworker.pipeline.build import Draft, build_attempt
from chainworker.pipeline.context import FeeState, Keys, PipelineContext, policy_of
from chainworker.pipeline.fees import BUDGET_INSTRUCTION_UNITS, compute_budget
from chainworker.pipeline.payer_pool import PayerPool
from chainworker.pipeline.prepare import prefunded_mint_lamports

SOL = 1_000_000_000
MARGINS = (1.0, 1.02, 1.05, 1.1, 1.2)
ORDINARY_URI = "https://tickets.example.com/{event_id}/{ticket_id}.json"
# With its two ids (36 characters each) exactly nft.URI_MAX_BYTES bytes.
_MAX_URI_START = "https://t.example/{event_id}/{ticket_id}/"
_ID = uuid.UUID(int=0)
MAX_URI = _MAX_URI_START + "x" * (
    nft.URI_MAX_BYTES - len(_MAX_URI_START.format(event_id=_ID, ticket_id=_ID))
)
MAX_SYMBOL = "T" * nft.SYMBOL_MAX_BYTES
# The edge each operation's pooled "first edge" row takes its cached simulation from.
FIRST_EDGES = ("ordinary", "to a new holder")
PREFUND_LAMPORTS = 1_000_000
# create_program_address, once per bump the associated token program tries.
BUMP_UNITS = 1_500
# Per-transaction failure rate the tail model below is asked to stay under.
TARGET_FAILURE_RATE = 1e-6  # below the mint's rent: a top-up transfer is needed


@dataclass
class Ticket:
    row: tickets.TicketRow
    holder: Pubkey  # where the NFT is now
    first_holder: Pubkey


@dataclass
class Edge:
    op: TxOp
    name: str
    prefunded: bool = False
    # False: transfers to an existing account, which compute_budget never caches
    cacheable: bool = True
    cached: int = 0  # the base units compute_budget simulated and cached for this edge
    limits: list[int] = field(default_factory=list)  # the limit each transaction asked for
    sims: list[int] = field(default_factory=list)  # each transaction simulated unbudgeted
    consumed: list[int] = field(default_factory=list)
    # Bumps tried past 255 to find the holder account's address (mint: the holder's,
    # transfer: the new holder's; a burn derives none).
    bumps: list[int] = field(default_factory=list)

    def bases(self) -> list[int]:
        """What each consumed without its address search's extra bumps."""
        return [c - BUMP_UNITS * b for c, b in zip(self.consumed, self.bumps, strict=True)]


class Raw:
    """Plain JSON-RPC batches, for what the worker's client has no call for."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.http = httpx.AsyncClient(timeout=30)

    async def batch(self, method: str, params: Sequence[list[Any]]) -> list[Any]:
        out: list[Any] = []
        for offset in range(0, len(params), 100):
            chunk = params[offset : offset + 100]
            body = [
                {"jsonrpc": "2.0", "id": i, "method": method, "params": p}
                for i, p in enumerate(chunk)
            ]
            answers = sorted((await self.http.post(self.url, json=body)).json(),
                             key=lambda a: a["id"])
            for answer in answers:
                if "error" in answer:
                    raise RuntimeError(f"{method}: {answer['error']}")
                out.append(answer["result"])
        return out

    async def wait_confirmed(self, signatures: list[str], within: float = 60) -> None:
        deadline = time.monotonic() + within
        remaining = signatures
        while remaining:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{len(remaining)} transactions not confirmed in {within}s")
            statuses: list[Any] = []
            for offset in range(0, len(remaining), 256):
                chunk = remaining[offset : offset + 256]
                statuses += (await self.batch("getSignatureStatuses", [[chunk]]))[0]["value"]
            remaining = [
                sig for sig, status in zip(remaining, statuses, strict=True)
                if status is None or status.get("confirmationStatus") == "processed"
            ]
            if remaining:
                await asyncio.sleep(0.1)

    async def consumed(self, signatures: list[str]) -> list[int]:
        config = {"encoding": "json", "commitment": "confirmed",
                  "maxSupportedTransactionVersion": 0}
        found = await self.batch("getTransaction", [[sig, config] for sig in signatures])
        for sig, tx in zip(signatures, found, strict=True):
            if tx is None or tx["meta"]["err"] is not None:
                raise RuntimeError(f"{sig} failed: {tx and tx['meta']['err']}")
        return [int(tx["meta"]["computeUnitsConsumed"]) for tx in found]


def new_ticket(tenant: uuid.UUID, number: int, event_name: str) -> Ticket:
    row = tickets.TicketRow(
        id=uuid.uuid4(), tenant_id=tenant, event_id=uuid.uuid4(), user_id=uuid.uuid4(),
        status="pending", token_mint=None, ticket_number=f"{number:04d}", event_name=event_name,
    )
    holder = Keypair().pubkey()
    return Ticket(row, holder, holder)


async def prepare(
    ctx: PipelineContext, edge: Edge, drafts: list[Draft]
) -> list[nft.SignedTx]:
    """Sign each draft as `prepare.sign_attempt` does; simulate each unbudgeted too."""
    ctx.fees = FeeState()  # this edge's first transaction is the one simulated and cached

    def unbudgeted(draft: Draft) -> Callable[[], Awaitable[nft.SignedTx]]:
        async def build() -> nft.SignedTx:
            return build_attempt(ctx, draft, None).signed
        return build

    signed = []
    for draft in drafts:
        budget = await compute_budget(ctx, draft, 1, unbudgeted(draft))
        signed.append(build_attempt(ctx, draft, budget).signed)
        edge.limits.append(budget.unit_limit or 0)
    kind = (edge.op, edge.prefunded)
    edge.cached = ctx.fees.cached_units(kind) or 0
    edge.bumps = [extra_bumps(ctx, d) for d in drafts]
    for offset in range(0, len(drafts), 50):
        chunk = drafts[offset : offset + 50]
        edge.sims += await asyncio.gather(
            *(ctx.rpc.simulate_units(build_attempt(ctx, d, None).signed.transaction)
              for d in chunk)
        )
    if not edge.cacheable:  # each simulated for itself: the cheapest base of them
        edge.cached = min(
            s - BUMP_UNITS * b for s, b in zip(edge.sims, edge.bumps, strict=True)
        )
    return signed


async def send_all(ctx: PipelineContext, raw: Raw, batch: list[tuple[Edge, list[nft.SignedTx]]]
                   ) -> None:
    """Send every edge's transactions at once; record what each consumed."""
    everything = [tx for _, signed in batch for tx in signed]
    errors = await ctx.rpc.send_raw_many([tx.raw for tx in everything])
    if any(errors):
        raise RuntimeError(f"send refused: {next(e for e in errors if e)}")
    await raw.wait_confirmed([str(tx.signature) for tx in everything])
    for edge, signed in batch:
        edge.consumed = await raw.consumed([str(tx.signature) for tx in signed])


def extra_bumps(ctx: PipelineContext, draft: Draft) -> int:
    if draft.op is TxOp.BURN:
        return 0
    assert draft.destination is not None
    mint = (ctx.keys.mint_address(draft.tenant_id, draft.ticket.id) if draft.op is TxOp.MINT
            else Pubkey.from_string(draft.ticket.token_mint or ""))
    seeds = [bytes(draft.destination), bytes(TOKEN_2022_PROGRAM_ID), bytes(mint)]
    return 255 - Pubkey.find_program_address(seeds, ASSOCIATED_TOKEN_PROGRAM_ID)[1]


def mint_drafts(ctx: PipelineContext, group: list[Ticket], blockhash: Hash,
                prefunded: list[int] | None = None) -> list[Draft]:
    return [
        Draft(TxOp.MINT, t.row.tenant_id, t.row, None, t.holder,
              memo=f"cw:{uuid.uuid4()}:1", blockhash=blockhash,
              prefunded=prefunded[i] if prefunded else 0)
        for i, t in enumerate(group)
    ]


def moved(group: list[Ticket], blockhash: Hash, op: TxOp, to: Callable[[Ticket], Pubkey | None]
          ) -> list[Draft]:
    return [
        Draft(op, t.row.tenant_id, t.row, t.holder, to(t), memo=f"cw:{uuid.uuid4()}:1",
              blockhash=blockhash, prefunded=0)
        for t in group
    ]


def with_settings(ctx: PipelineContext, **changes: Any) -> PipelineContext:
    return dataclasses.replace(ctx, settings=ctx.settings.model_copy(update=changes))


async def run(args: argparse.Namespace) -> tuple[list[Edge], Settings]:
    with start_localnet(slot_ms=args.slot_ms, seed=7) as node, \
            tempfile.TemporaryDirectory() as state:
        settings = Settings(solana_rpc_urls=[node.rpc_url], solana_cluster="localnet",
                            nft_uri_template=ORDINARY_URI, state_dir=Path(state))
        rpc = SolanaRpc.from_settings(settings)
        raw = Raw(node.rpc_url)
        authority = Keypair()
        await rpc.request_airdrop(authority.pubkey(), 1_000 * SOL)
        base = PipelineContext(
            settings=settings, pool=cast(Any, None), rpc=rpc, sender=cast(Any, None),
            policy=policy_of(settings), keys=Keys(authority, os.urandom(32), os.urandom(32)),
            payers=PayerPool(authority, (), 0),
        )
        longest = with_settings(base, nft_uri_template=MAX_URI, nft_symbol=MAX_SYMBOL)
        tenant = uuid.uuid4()
        ordinary = [new_ticket(tenant, i, "Summer Concert") for i in range(args.holders)]
        # Event names past 32 bytes: the ticket's name is cut to exactly 32.
        long_name = "Grand Finale World Tour Night " * 2
        big = [new_ticket(tenant, i, long_name) for i in range(args.edge)]
        prefunded = [new_ticket(tenant, i, "Summer Concert") for i in range(args.edge)]
        prefunded_big = [new_ticket(tenant, i, long_name) for i in range(args.edge)]
        edges: list[Edge] = []

        def edge(op: TxOp, name: str, *, prefunded: bool = False, cacheable: bool = True
                 ) -> Edge:
            edges.append(Edge(op, name, prefunded=prefunded, cacheable=cacheable))
            return edges[-1]

        # Someone funds the mint addresses before the mints (as after a first attempt).
        funded = [base.keys.mint_address(tenant, t.row.id) for t in prefunded + prefunded_big]
        airdrops = await raw.batch(
            "requestAirdrop", [[str(address), PREFUND_LAMPORTS] for address in funded]
        )
        await raw.wait_confirmed(airdrops)
        lamports = [await prefunded_mint_lamports(base, tenant, t.row.id)
                    for t in prefunded + prefunded_big]

        # 1. mints
        blockhash = (await rpc.latest_blockhash())[0]
        plan: list[tuple[Edge, list[nft.SignedTx]]] = []
        for name, ctx, group, funds in (
            ("ordinary", base, ordinary, None),
            ("max name/uri/symbol", longest, big, None),
            ("prefunded mint address", base, prefunded, lamports[: args.edge]),
            ("prefunded + max metadata", longest, prefunded_big, lamports[args.edge :]),
        ):
            e = edge(TxOp.MINT, name, prefunded=funds is not None)
            plan.append((e, await prepare(ctx, e, mint_drafts(ctx, group, blockhash, funds))))
        await send_all(base, raw, plan)
        for t in ordinary + big + prefunded + prefunded_big:
            mint = base.keys.mint_address(tenant, t.row.id)
            t.row = dataclasses.replace(t.row, token_mint=str(mint), status="minted")

        # 2. transfers to holders without an account
        blockhash = (await rpc.latest_blockhash())[0]
        fresh = {t.row.id: Keypair().pubkey() for t in ordinary + big}
        plan = []
        for name, ctx, group in (("to a new holder", base, ordinary),
                                 ("max metadata, new holder", longest, big)):
            e = edge(TxOp.TRANSFER, name)
            drafts = moved(group, blockhash, TxOp.TRANSFER, lambda t: fresh[t.row.id])
            plan.append((e, await prepare(ctx, e, drafts)))
        await send_all(base, raw, plan)
        for t in ordinary + big:
            t.holder = fresh[t.row.id]

        # 3. transfers back to an existing (empty) account; burns of the other mints
        blockhash = (await rpc.latest_blockhash())[0]
        back = ordinary[: max(args.edge, len(ordinary) // 2)]
        plan = []
        e = edge(TxOp.TRANSFER, "to an existing account", cacheable=False)
        plan.append((e, await prepare(base, e, moved(back, blockhash, TxOp.TRANSFER,
                                                     lambda t: t.first_holder))))
        for name, ctx, group in (("max metadata", longest, big),
                                 ("prefunded + max, unmoved", longest, prefunded_big)):
            e = edge(TxOp.BURN, name)
            plan.append((e, await prepare(ctx, e, moved(group, blockhash, TxOp.BURN,
                                                        lambda t: None))))
        await send_all(base, raw, plan)
        for t in back:
            t.holder = t.first_holder

        # 4. burns of the ordinary mints, wherever they are now
        blockhash = (await rpc.latest_blockhash())[0]
        e = edge(TxOp.BURN, "ordinary")
        plan = [(e, await prepare(base, e, moved(ordinary, blockhash, TxOp.BURN,
                                                 lambda t: None)))]
        await send_all(base, raw, plan)
        await raw.http.aclose()
        await rpc.close()
    order = {TxOp.MINT: 0, TxOp.TRANSFER: 1, TxOp.BURN: 2}
    ordered = sorted(edges, key=lambda e: (order[e.op], e.name not in FIRST_EDGES))
    return ordered, settings


def needed_headroom(cached: int, edges: Sequence[Edge]) -> int:
    """Headroom so that no transaction of `edges` exceeds cached + its own search + 300."""
    return max(
        0,
        max(
            c - (cached + BUMP_UNITS * b + BUDGET_INSTRUCTION_UNITS)
            for e in edges for c, b in zip(e.consumed, e.bumps, strict=True)
        ),
    )


def report(edges: list[Edge], settings: Settings) -> None:
    margin, headroom = settings.compute_unit_margin, settings.compute_unit_headroom
    print(f"compute units per transaction on the localnet; the limit asked for = "
          f"ceil({margin} x (cached base + {BUMP_UNITS:,} x address-search steps + "
          f"{BUDGET_INSTRUCTION_UNITS})) + {headroom:,}, the settings' defaults")
    print(f"{'op':<8} {'edge':<34} {'n':>4} {'cached':>7} {'consumed':>13} {'limit':>13} "
          f"{'over':>4} {'slack':>11} {'steps':>5}")
    for e in edges:
        slack = [limit - c for limit, c in zip(e.limits, e.consumed, strict=True)]
        over = sum(1 for x in slack if x < 0)
        print(f"{e.op.value:<8} {e.name:<34} {len(e.consumed):>4} {e.cached:>7,} "
              f"{min(e.consumed):>6,}-{max(e.consumed):<6,} {min(e.limits):>6,}-"
              f"{max(e.limits):<6,} {over:>4} {min(slack):>5,}-{max(slack):<5,} "
              f"0-{max(e.bumps)}")
    print("one cache across the edges of a kind (a 5-minute cache is filled by whichever "
          "transaction of the kind comes first): headroom needed so that none exceeds")
    worst = 0
    kinds = sorted({(e.op, e.prefunded) for e in edges}, key=lambda k: (k[0].value, k[1]))
    for op, prefunded in kinds:
        mine = [e for e in edges if (e.op, e.prefunded) == (op, prefunded) and e.cacheable]
        if not mine:
            continue
        cheapest = min(e.cached for e in mine)
        need = needed_headroom(cheapest, mine)
        worst = max(worst, need)
        label = f"{op.value}{' (prefunded)' if prefunded else ''}"
        print(f"  {label:<22} cached = cheapest edge's base {cheapest:,}: headroom {need:,} "
              f"({', '.join(e.name for e in mine)})")
    verdict = "holds" if worst <= headroom else "is too small"
    print(f"largest headroom needed: {worst:,}; the default ({headroom:,}) {verdict}")
    gaps = sorted({c - s for e in edges for s, c in zip(e.sims, e.consumed, strict=True)})
    print(f"consumed minus the transaction's own (unbudgeted) simulation: "
          f"{', '.join(f'{g:,}' for g in gaps)} (the two compute-budget instructions)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--holders", type=int, default=250, help="ordinary transactions per op")
    parser.add_argument("--edge", type=int, default=60, help="transactions per other edge")
    parser.add_argument("--slot-ms", type=int, default=400)
    args = parser.parse_args()
    started = time.perf_counter()
    edges, settings = asyncio.run(run(args))
    report(edges, settings)
    print(f"({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
