"""The campaign's invariants, checked independently from the database and from the chain."""

from __future__ import annotations

import asyncio
import base64
import statistics
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import asyncpg
import httpx

from chainworker.chain import keys, token2022
from chainworker.config import load_settings
from chaos_faults import FINAL
from chaos_load import owner_execute
from chaos_stack import Campaign

LIVE = ("queued", "submitted")

@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    figure: str


async def rpc_batch(url: str, method: str, params: list[list[Any]], size: int = 200) -> list[Any]:
    """Results of many calls of one method, in JSON-RPC batches (errors raise)."""
    results: list[Any] = []
    async with httpx.AsyncClient(timeout=60) as http:
        for start in range(0, len(params), size):
            chunk = params[start : start + size]
            body = [{"jsonrpc": "2.0", "id": i, "method": method, "params": p}
                    for i, p in enumerate(chunk)]
            answers = {a["id"]: a for a in (await http.post(url, json=body)).json()}
            for i in range(len(chunk)):
                if "error" in answers[i]:
                    raise RuntimeError(f"{method}: {answers[i]['error']}")
                results.append(answers[i]["result"])
    return results


async def wait_settled(campaign: Campaign) -> float:
    """Wait until no request of the campaign is live; seconds waited."""
    started = time.monotonic()
    tenants = [t.id for t in campaign.tenants]
    while time.monotonic() - started < campaign.config.settle_seconds:
        [row] = await owner_execute(
            campaign,
            """SELECT (SELECT count(*) FROM chain_requests
                        WHERE tenant_id = ANY($1::uuid[]) AND status IN ('queued', 'submitted'))
                      + (SELECT count(*) FROM outbox WHERE tenant_id = ANY($1::uuid[])
                          AND processed_at IS NULL AND event_type LIKE 'nft.%') AS live""",
            tenants,
        )
        if row["live"] == 0:
            break
        await asyncio.sleep(1.0)
    return time.monotonic() - started


async def check(campaign: Campaign) -> list[Check]:
    conn = await asyncpg.connect(campaign.admin_dsn)
    try:
        return await _check(campaign, conn)
    finally:
        await conn.close()


async def _check(campaign: Campaign, conn: asyncpg.Connection) -> list[Check]:
    tenants = [t.id for t in campaign.tenants]
    url = campaign.localnet.rpc_urls[0]
    checks: list[Check] = []
    requests = {
        r["id"]: r for r in await conn.fetch(
            """SELECT id, tenant_id, ticket_id, transfer_id, operation, reason, status, source,
                      outcome_code FROM chain_requests WHERE tenant_id = ANY($1::uuid[])""",
            tenants,
        )
    }

    # 1. every accepted request is terminal, and none is lost
    lost = 0
    for ask in campaign.asks:
        if ask.request_id is None:  # through the outbox: the relay recorded it
            found = [r for r in requests.values()
                     if r["source"] == "outbox" and r["operation"] == ask.operation
                     and r["ticket_id"] == ask.ticket and r["transfer_id"] == ask.transfer]
            if found:
                ask.request_id = found[0]["id"]
        if ask.request_id not in requests:
            lost += 1
    statuses = Counter(r["status"] for r in requests.values())
    live = sum(statuses[s] for s in LIVE)
    quarantined_outbox = await conn.fetchval(
        """SELECT count(*) FROM outbox
            WHERE tenant_id = ANY($1::uuid[]) AND quarantined_at IS NOT NULL""",
        tenants,
    )
    checks.append(Check(
        "every accepted request is terminal; none lost or left live",
        lost == 0 and live == 0 and quarantined_outbox == 0 and not campaign.errors,
        f"{len(campaign.asks)} asked, {len(requests)} recorded "
        f"({', '.join(f'{n} {s}' for s, n in sorted(statuses.items()))}); {lost} lost, "
        f"{live} live, {quarantined_outbox} outbox rows quarantined, "
        f"{len(campaign.errors)} errors",
    ))

    # 2. no double execution: mint accounts are the minted tickets; nothing landed twice
    tickets = {
        t["id"]: t for t in await conn.fetch(
            """SELECT id, tenant_id, status, token_mint, wallet_address, user_id
                 FROM tickets WHERE tenant_id = ANY($1::uuid[])""",
            tenants,
        )
    }
    seed = keys.load_mint_seed(load_settings(state_dir=campaign.state_dir))
    addresses = {t: str(keys.mint_keypair(seed, row["tenant_id"], t).pubkey())
                 for t, row in tickets.items()}
    accounts = await rpc_batch(url, "getAccountInfo",
                               [[a, {"encoding": "base64", "commitment": "confirmed"}]
                                for a in addresses.values()])
    on_chain = {t: acc["value"] for t, acc in zip(addresses, accounts, strict=True)}
    minted_db = {t for t, row in tickets.items() if row["token_mint"] is not None}
    # Every mint of the campaign has a close authority: a confirmed burn closed its account.
    burned_db = {t for t in minted_db if tickets[t]["status"] in ("revoked", "refunded")}
    open_db = minted_db - burned_db
    minted_chain = {t for t, value in on_chain.items() if value is not None}
    wrong_mint = sum(1 for t in minted_db if tickets[t]["token_mint"] != addresses[t])
    attempts = await conn.fetch(
        """SELECT id, request_id, tx_signature, status, attempt FROM pending_transactions
            WHERE tenant_id = ANY($1::uuid[])""",
        tenants,
    )
    signatures = [a["tx_signature"] for a in attempts]
    status_pages = await rpc_batch(
        url, "getSignatureStatuses",
        [[signatures[i : i + 256], {"searchTransactionHistory": True}]
         for i in range(0, len(signatures), 256)], size=20,
    )
    seen = [status for page in status_pages for status in page["value"]]
    landed_ok: Counter[UUID] = Counter()
    landed: list[tuple[asyncpg.Record, Any]] = []
    for attempt, status in zip(attempts, seen, strict=True):
        if status is None:
            continue
        landed.append((attempt, status))
        if status.get("err") is None:
            landed_ok[attempt["request_id"]] += 1
    twice = sum(1 for n in landed_ok.values() if n > 1)
    confirmed_without = sum(1 for rid, r in requests.items()
                            if r["status"] == "confirmed" and landed_ok[rid] != 1)
    landed_not_confirmed = sum(1 for rid, n in landed_ok.items()
                               if n and requests[rid]["status"] != "confirmed")
    checks.append(Check(
        "no double execution",
        open_db == minted_chain and wrong_mint == 0 and twice == 0
        and confirmed_without == 0 and landed_not_confirmed == 0,
        f"{len(minted_chain)} mint accounts on chain for {len(minted_db)} minted tickets "
        f"({len(burned_db)} burned, their mints closed); "
        f"{twice} requests landed twice; {confirmed_without} confirmed requests without "
        f"exactly one landing; {landed_not_confirmed} landed but not confirmed",
    ))

    # 3. the database equals the chain for every ticket: supply, holder, metadata
    mints = {t: token2022.parse_mint(base64.b64decode(v["data"][0]))
             for t, v in on_chain.items() if v is not None}
    live_nfts = [t for t, m in mints.items() if m.base.supply > 0]
    largest = await rpc_batch(url, "getTokenLargestAccounts",
                              [[addresses[t], {"commitment": "confirmed"}] for t in live_nfts])
    holder_accounts = [next((a["address"] for a in r["value"] if a["amount"] != "0"), None)
                       for r in largest]
    holder_infos = await rpc_batch(
        url, "getAccountInfo",
        [[a, {"encoding": "base64", "commitment": "confirmed"}] for a in holder_accounts if a],
    )
    owners: dict[UUID, str | None] = {}
    infos = iter(holder_infos)
    for t, account in zip(live_nfts, holder_accounts, strict=True):
        if account is None:
            owners[t] = None
            continue
        data = base64.b64decode(next(infos)["value"]["data"][0])
        owners[t] = str(token2022.parse_token_account(data).owner)
    disagree: Counter[str] = Counter()
    for t, mint in mints.items():
        row = tickets[t]
        burned = row["status"] in ("revoked", "refunded")
        if mint.base.supply != (0 if burned else 1):
            disagree["supply"] += 1
        if not burned and owners.get(t) != row["wallet_address"]:
            disagree["holder"] += 1
        if mint.metadata is None or mint.metadata.field("ticket_id") != str(t):
            disagree["metadata"] += 1
    checks.append(Check(
        "the database equals the chain for every ticket",
        not disagree and open_db == minted_chain,
        f"{len(mints)} NFTs read back ({len(live_nfts)} live); "
        + (", ".join(f"{n} {k}" for k, n in disagree.items()) or "no disagreement"),
    ))

    # 4. no live attempt is left (and the oldest one seen during the run)
    live_attempts = sum(1 for a in attempts if a["status"] in ("pending", "confirming"))
    checks.append(Check(
        "no live attempt is older than its blockhash window plus a margin",
        live_attempts == 0,
        f"{live_attempts} live at the end; the oldest live attempt during the run was "
        f"{campaign.oldest_live_seen:.0f} s old",
    ))

    # 5. history rows for every status change; exactly one outbox event per outcome
    history = defaultdict(list)
    for h in await conn.fetch(
        """SELECT ticket_id, previous_status, new_status FROM ticket_state_history
            WHERE tenant_id = ANY($1::uuid[]) ORDER BY ticket_id, created_at, id""",
        tenants,
    ):
        history[h["ticket_id"]].append(h)
    broken_history = 0
    for t, row in tickets.items():
        rows = history.get(t, [])
        chain = ["sold", *(h["new_status"] for h in rows)]
        linked = all(h["previous_status"] == chain[i] for i, h in enumerate(rows))
        if not linked or chain[-1] != row["status"]:
            broken_history += 1
    events = Counter(
        UUID(e["request_id"]) for e in await conn.fetch(
            """SELECT payload->>'request_id' AS request_id FROM outbox
                WHERE tenant_id = ANY($1::uuid[]) AND event_type LIKE 'ticket.%'""",
            tenants,
        )
    )
    wrong_events = sum(1 for rid, r in requests.items()
                       if r["status"] in FINAL and events[rid] != 1)
    checks.append(Check(
        "every status change has its history row; each outcome exactly one outbox event",
        broken_history == 0 and wrong_events == 0,
        f"{sum(len(v) for v in history.values())} history rows, {broken_history} tickets whose "
        f"history does not lead to their status; {sum(events.values())} events, "
        f"{wrong_events} outcomes without exactly one",
    ))

    # 6. spending equals what was paid on chain (the authority's balance, per transaction)
    bodies = await rpc_batch(url, "getTransaction",
                             [[a["tx_signature"], {"encoding": "json", "commitment": "confirmed",
                                                     "maxSupportedTransactionVersion": 0}]
                              for a, _ in landed])
    paid = sum(b["meta"]["preBalances"][0] - b["meta"]["postBalances"][0]
               for b in bodies if b is not None)
    charged = int(await conn.fetchval(
        """SELECT coalesce(sum(amount), 0) FROM spending_transactions
            WHERE tenant_id = ANY($1::uuid[]) AND user_id IS NULL AND currency = 'LAM'""",
        tenants,
    ))
    checks.append(Check(
        "spending totals equal the fees and rent paid on chain",
        paid == charged,
        f"{charged:,} lamports charged, {paid:,} paid by the authority for {len(landed)} "
        f"landed transactions",
    ))

    # what the faults did (figures, not invariants)
    [figures] = await conn.fetch(
        """SELECT count(*) FILTER (WHERE status = 'replaced') AS replaced,
                  count(*) FILTER (WHERE status = 'failed') AS failed,
                  count(*) FILTER (WHERE attempt > 1) AS later_attempts,
                  coalesce(sum(send_count), 0) AS sends
             FROM pending_transactions WHERE tenant_id = ANY($1::uuid[])""",
        tenants,
    )
    [latency] = await conn.fetch(
        """SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM
                      completed_at - created_at)) AS p50,
                  percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM
                      completed_at - created_at)) AS p99
             FROM chain_requests WHERE tenant_id = ANY($1::uuid[]) AND completed_at IS NOT NULL""",
        tenants,
    )
    campaign.figures = {
        "attempts": len(attempts),
        "attempts replaced (expired, sent again)": figures["replaced"],
        "attempts failed on chain": figures["failed"],
        "attempts after the first": figures["later_attempts"],
        "sends and rebroadcasts": figures["sends"],
        "requests adopted (done by an earlier attempt)": sum(
            1 for r in requests.values() if r["outcome_code"] == "adopted"),
        "request latency p50 / p99 (recorded -> final)":
            f"{(latency['p50'] or 0):.1f} s / {(latency['p99'] or 0):.1f} s",
    }

    # 7. recovery after each fault
    times = sorted(seconds for *_, seconds in campaign.probes)
    if times:
        p99 = times[min(len(times) - 1, int(0.99 * len(times)))]
        worst = max(campaign.probes, key=lambda p: p[2])[0]
        figure = (f"{len(times)} faults: max {times[-1]:.1f} s (after {worst}), p99 {p99:.1f} s,"
                  f" median {statistics.median(times):.1f} s")
    else:
        figure = "no probe finished"
    recovered = bool(times) and len(times) == len(campaign.probes)
    checks.append(Check("time from each fault to full recovery", recovered, figure))
    return checks
