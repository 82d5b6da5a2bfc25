"""Keep the fee payers funded: one round reads their balances, settles the top-ups in
flight, and records and sends a transfer from the authority to each payer below the
threshold.

A top-up follows the rules of every other chainworker transaction: recorded (signed bytes,
blockhash, last valid height) before it is sent, rebroadcast while its blockhash is valid,
settled by `lifecycle.decide.next_action` from one endpoint's read, expired only once
certainly past. It is never replaced: the next round records a new one if the payer is
still low. At most one per payer is live (a unique index), so workers racing on the same
low balance send one between them.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from solders.message import MessageV0, to_bytes_versioned
from solders.pubkey import Pubkey
from solders.system_program import TransferParams, transfer
from solders.transaction import VersionedTransaction

from chainworker.chain.errors import ChainError
from chainworker.db import fee_payers
from chainworker.lifecycle import decide
from chainworker.lifecycle.model import Policy, TxSnapshot, TxStatus
from chainworker.obs import logs, metrics
from chainworker.pipeline.context import PipelineContext
from chainworker.pipeline.settle import epoch, observed

log = logs.get_logger(__name__)

# A top-up is not replaced: an expired one ends, and the payer's next low reading starts
# another.
_TOP_UP_POLICY_RETRIES = 0


@dataclass(frozen=True, slots=True)
class RoundResult:
    balances: dict[Pubkey, int]
    sent: int
    settled: int
    live: int  # top-ups in flight after the round


async def fund_pool(ctx: PipelineContext, *, within: float, interval: float = 0.5) -> None:
    """Rounds until no top-up is in flight, for at most `within` seconds: at start, so the
    first jobs find funded payers (until then the authority pays)."""
    deadline = time.monotonic() + within
    while True:
        if not (await top_up_round(ctx)).live or time.monotonic() > deadline:
            return
        await asyncio.sleep(interval)


async def top_up_round(ctx: PipelineContext) -> RoundResult:
    pool = ctx.payers
    if not pool.payers:
        return RoundResult({}, 0, 0, 0)
    keys = pool.keys
    balances = dict(zip(keys, await asyncio.gather(*(ctx.rpc.get_balance(k) for k in keys)),
                        strict=True))
    metrics.FEE_PAYER_MIN_BALANCE.set(ctx.settings.fee_payer_min_lamports)
    for key, balance in balances.items():
        pool.note_balance(key, balance)
        metrics.FEE_PAYER_BALANCE.labels(payer=str(key)).set(balance)
    async with ctx.pool.acquire() as conn:
        live = await fee_payers.live(conn)
    settled = await _settle(ctx, live) if live else 0
    still_live = {top_up.payer for top_up in live}
    low = [
        (key, balance) for key, balance in balances.items()
        if balance < ctx.settings.fee_payer_min_lamports and str(key) not in still_live
    ]
    sent = await _send_new(ctx, low) if low else 0
    return RoundResult(balances, sent, settled, len(live) - settled + sent)


async def _settle(ctx: PipelineContext, live: list[fee_payers.LiveTopUp]) -> int:
    read = await ctx.rpc.read_chain([top_up.tx_signature for top_up in live])
    policy = Policy(max_retries=_TOP_UP_POLICY_RETRIES, target=ctx.settings.commitment,
                    rebroadcast_interval_seconds=ctx.settings.rebroadcast_interval_seconds)
    now = time.time()
    settled = 0
    resend: list[fee_payers.LiveTopUp] = []
    async with ctx.pool.acquire() as conn:
        for top_up, status in zip(live, read.statuses, strict=True):
            snapshot = TxSnapshot(
                status=TxStatus.PENDING, attempt=1,
                last_valid_block_height=top_up.last_valid_block_height,
                last_sent_at=epoch(top_up.last_sent_at),
                expiry_check_pending=top_up.expiry_check_pending,
            )
            action = decide.next_action(snapshot, observed(status), read.height, now, policy)
            if isinstance(action, decide.Confirm):
                done = await fee_payers.settle(conn, top_up.id, "confirmed", slot=action.slot)
                outcome = "confirmed"
            elif isinstance(action, decide.Fail):
                done = await fee_payers.settle(
                    conn, top_up.id, "failed", slot=action.slot, error=action.message
                )
                outcome = "failed"
            elif isinstance(action, decide.Expire):
                done = await fee_payers.settle(conn, top_up.id, "expired")
                outcome = "expired"
            else:
                if isinstance(action, decide.RecheckExpiry):
                    await fee_payers.mark_expiry_check(conn, top_up.id)
                elif isinstance(action, decide.Rebroadcast):
                    resend.append(top_up)
                continue
            if done:
                settled += 1
                metrics.FEE_PAYER_TOP_UPS.labels(outcome=outcome).inc()
                log.info("fee payer top-up settled", payer=top_up.payer, outcome=outcome,
                         signature=top_up.tx_signature)
    if resend:
        await _broadcast(ctx, resend)
    return settled


async def _send_new(ctx: PipelineContext, low: list[tuple[Pubkey, int]]) -> int:
    authority = ctx.keys.authority
    authority_key = ctx.payers.key_of(None)
    lamports = ctx.settings.fee_payer_top_up_lamports
    blockhash, last_valid = await ctx.rpc.latest_blockhash()
    recorded: list[fee_payers.LiveTopUp] = []
    async with ctx.pool.acquire() as conn:
        for key, balance in low:
            instruction = transfer(
                TransferParams(from_pubkey=authority_key, to_pubkey=key, lamports=lamports)
            )
            message = MessageV0.try_compile(authority_key, [instruction], [], blockhash)
            # populate, not VersionedTransaction(message, [authority]): the authority
            # may be an HSM key, which solders cannot call
            signed = VersionedTransaction.populate(
                message, [authority.sign_message(to_bytes_versioned(message))]
            )
            raw = bytes(signed)
            new = fee_payers.NewTopUp(
                payer=str(key), lamports=lamports, balance_before=balance,
                tx_signature=str(signed.signatures[0]), blockhash=str(blockhash),
                last_valid_block_height=last_valid, serialized_tx=raw,
            )
            if await fee_payers.record(conn, new):
                recorded.append(fee_payers.LiveTopUp(
                    0, new.payer, new.tx_signature, last_valid, raw, None, False
                ))
    if recorded:
        await _broadcast(ctx, recorded)
        metrics.FEE_PAYER_TOP_UPS.labels(outcome="sent").inc(len(recorded))
        log.info("fee payers topped up", payers=[top_up.payer for top_up in recorded],
                 lamports=lamports)
    return len(recorded)


async def _broadcast(ctx: PipelineContext, top_ups: list[fee_payers.LiveTopUp]) -> None:
    """Send recorded bytes; a send that fails is retried by the next round's rebroadcast."""
    errors = await ctx.rpc.send_raw_many([top_up.serialized_tx for top_up in top_ups])
    sent = [t.tx_signature for t, error in zip(top_ups, errors, strict=True) if error is None]
    for top_up, error in zip(top_ups, errors, strict=True):
        if isinstance(error, ChainError):
            log.warning("fee payer top-up not sent yet", payer=top_up.payer, error=str(error))
    if sent:
        async with ctx.pool.acquire() as conn:
            await fee_payers.mark_sent_by_signature(conn, sent)
