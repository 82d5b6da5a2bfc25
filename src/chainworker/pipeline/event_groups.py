"""Event groups: create an event's collection on chain once, and settle its creation.

An event's group is a Token-2022 mint with GroupPointer and TokenGroup in itself, the
platform authority its update authority and mint authority (`chain.collection`). Its
creation follows the rules of every other chainworker transaction: recorded (signed bytes,
blockhash, last valid height) before it is sent, rebroadcast while its blockhash is valid,
settled by `lifecycle.decide.next_action` from one endpoint's read, expired only once
certainly past. It is never replaced: asking again after an expiry or a failure records a
new one. At most one per event is live or confirmed (a unique index), and its mint
address is derived from (tenant, event), so a second creation cannot land either.

Verification needs the event's group confirmed: until then a verify is refused
(`group_missing`), or deferred while the creation is in flight (`pipeline.prepare`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from uuid import UUID

from solders.pubkey import Pubkey
from solders.system_program import ID as SYSTEM_PROGRAM_ID

from chainworker.chain import collection, nft
from chainworker.chain.errors import ChainError
from chainworker.db import event_groups, tickets
from chainworker.db.event_groups import GroupRow, LiveGroup
from chainworker.db.pool import tenant_transaction
from chainworker.lifecycle import decide
from chainworker.lifecycle.model import Policy, TxSnapshot, TxStatus
from chainworker.obs import logs
from chainworker.pipeline.context import PipelineContext
from chainworker.pipeline.settle import epoch, observed

ROUND_LIMIT = 256
# A creation is not replaced: an expired one ends, and asking again records another.
_GROUP_POLICY_RETRIES = 0

log = logs.get_logger(__name__)


class UnknownEvent(LookupError):
    """The event is not the tenant's (or does not exist): nothing was recorded."""


@dataclass(frozen=True, slots=True)
class Requested:
    group: GroupRow
    created: bool  # False: the event's group was live or confirmed already


def group_name(event_name: str) -> str:
    """The group's metadata name: the event's, cut to the metadata's bound."""
    encoded = (event_name or "Event").encode("utf-8")[: nft.NAME_MAX_BYTES]
    return encoded.decode("utf-8", "ignore") or "Event"


async def create_group(ctx: PipelineContext, tenant_id: UUID, event_id: UUID) -> Requested:
    """Record the creation of the event's group and send it; the live or confirmed one
    instead when there is one. UnknownEvent when the event is not the tenant's."""
    authority = ctx.keys.authority
    async with tenant_transaction(ctx.pool, tenant_id, reason="event group requested") as conn:
        name = await tickets.event_name(conn, event_id)
        if name is None:
            raise UnknownEvent(f"no event {event_id} for this tenant")
        existing = (await event_groups.of_events(conn, [event_id])).get(event_id)
        if existing is not None:
            return Requested(existing, created=False)
        keypair, address = ctx.keys.group_key(tenant_id, event_id)
        # Numbered, so that a creation after a failed one is other bytes even with the
        # same blockhash; two asking at once sign the same and record one.
        attempt = await event_groups.creations(conn, event_id) + 1
        blockhash, last_valid = await ctx.rpc.latest_blockhash()
        signed = collection.build_event_group(
            authority=authority, group_mint=keypair, group_address=address,
            name=group_name(name), symbol=ctx.settings.nft_symbol, event_id=event_id,
            memo=f"cw:group:{event_id}:{attempt}", recent_blockhash=blockhash,
            prefunded_lamports=await _prefunded(ctx, address),
        )
        recorded = await event_groups.record(conn, tenant_id, event_groups.NewGroup(
            event_id=event_id, group_mint=str(address), tx_signature=str(signed.signature),
            blockhash=str(blockhash), last_valid_block_height=last_valid,
            serialized_tx=signed.raw,
        ))
        row = (await event_groups.of_events(conn, [event_id]))[event_id]
    if recorded:
        await _broadcast(ctx, [(tenant_id, row.id, signed.raw)])
        log.info("event group recorded and sent", tenant_id=str(tenant_id),
                 event_id=str(event_id), group_mint=row.group_mint, signature=row.tx_signature)
    return Requested(row, created=recorded)


async def _prefunded(ctx: PipelineContext, address: Pubkey) -> int:
    """Lamports someone sent to the group's address before it was created (it is public
    once a first creation was sent), which would make CreateAccount fail."""
    account = await ctx.rpc.get_account(address)
    if account is None or account.owner != SYSTEM_PROGRAM_ID or account.data:
        return 0
    return account.lamports


async def settle_round(ctx: PipelineContext) -> int:
    """Read the chain for the live creations and settle each as `next_action` says;
    rebroadcast the ones still due. Returns how many are still live."""
    async with ctx.pool.acquire() as conn:
        live = await event_groups.live(conn, ROUND_LIMIT)
    if not live:
        return 0
    read = await ctx.rpc.read_chain([g.tx_signature for g in live], ctx.settings.commitment)
    policy = Policy(max_retries=_GROUP_POLICY_RETRIES, target=ctx.settings.commitment,
                    rebroadcast_interval_seconds=ctx.settings.rebroadcast_interval_seconds)
    now = time.time()
    remaining = len(live)
    resend: list[LiveGroup] = []
    for group, status in zip(live, read.statuses, strict=True):
        snapshot = TxSnapshot(
            status=TxStatus.PENDING, attempt=1,
            last_valid_block_height=group.last_valid_block_height,
            last_sent_at=epoch(group.last_sent_at),
            expiry_check_pending=group.expiry_check_pending,
        )
        action = decide.next_action(snapshot, observed(status), read.height, now, policy)
        if isinstance(action, decide.Rebroadcast):
            resend.append(group)
            continue
        async with tenant_transaction(
            ctx.pool, group.tenant_id, reason=f"event group {action.kind}"
        ) as conn:
            if isinstance(action, decide.Confirm):
                done = await event_groups.settle(conn, group.id, "confirmed", slot=action.slot)
            elif isinstance(action, decide.Fail):
                done = await event_groups.settle(
                    conn, group.id, "failed", slot=action.slot, error=action.message
                )
            elif isinstance(action, decide.Expire):
                done = await event_groups.settle(conn, group.id, "expired")
            else:
                if isinstance(action, decide.RecheckExpiry):
                    await event_groups.mark_expiry_check(conn, group.id)
                continue
        if done:
            remaining -= 1
            log.info("event group settled", tenant_id=str(group.tenant_id),
                     event_id=str(group.event_id), outcome=action.kind,
                     group_mint=group.group_mint, signature=group.tx_signature)
    if resend:
        await _broadcast(ctx, [(g.tenant_id, g.id, g.serialized_tx) for g in resend])
    return remaining


async def _broadcast(ctx: PipelineContext, groups: list[tuple[UUID, int, bytes]]) -> None:
    """Send recorded bytes; a send that fails is retried by the next round's rebroadcast."""
    errors = await ctx.rpc.send_raw_many([raw for *_, raw in groups])
    for (tenant_id, group_id, _), error in zip(groups, errors, strict=True):
        if isinstance(error, ChainError):
            log.warning("event group not sent yet", group_id=group_id, error=str(error))
            continue
        async with tenant_transaction(ctx.pool, tenant_id, reason="event group sent") as conn:
            await event_groups.mark_sent(conn, [group_id])
