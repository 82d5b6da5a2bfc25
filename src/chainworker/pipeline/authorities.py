"""Which platform authority signs for a ticket's NFT, and an authority rotation's plan.

With one authority configured, it signs everything, as it always has. While a rotation is
under way (`PREVIOUS_AUTHORITY_*` set beside the new `AUTHORITY_*`), a ticket may be held
by either: the worker reads the mint from the chain and signs with the configured key it
names (its permanent delegate; for a verify, its mint authority). The database is never
asked: a rotation that landed but is not yet confirmed is already the chain's truth, and
one request per ticket is live at a time, so nothing else moves it meanwhile.
"""

from __future__ import annotations

from dataclasses import dataclass

from solders.pubkey import Pubkey

from chainworker.chain import authority, group, token2022
from chainworker.chain.signer import Signer
from chainworker.chain.token2022 import TOKEN_2022_PROGRAM_ID
from chainworker.lifecycle.model import TxOp
from chainworker.lifecycle.ticket_rules import Refusal, RefusalCode
from chainworker.pipeline.context import PipelineContext

ROTATION_SETTINGS = (
    "set AUTHORITY_* to the new authority and PREVIOUS_AUTHORITY_* to the one it replaces, "
    "and restart the workers"
)


@dataclass(frozen=True, slots=True)
class Rotation:
    """A rotation of one mint: `current` (the old key) signs, `held` moves to `new`."""

    current: Signer
    new: Pubkey
    held: authority.Held


async def _mint_data(ctx: PipelineContext, token_mint: str) -> bytes | Refusal:
    account = await ctx.rpc.get_account(Pubkey.from_string(token_mint))
    if account is None or account.owner != TOKEN_2022_PROGRAM_ID:
        return Refusal(RefusalCode.NFT_MISSING, "the ticket's mint is not on chain")
    return account.data


async def signer_for(ctx: PipelineContext, op: TxOp, token_mint: str | None) -> Signer | Refusal:
    """The authority that signs `op` on the ticket's NFT (see the module's text)."""
    if op is TxOp.MINT or token_mint is None or ctx.keys.previous_authority is None:
        return ctx.keys.authority
    data = await _mint_data(ctx, token_mint)
    if isinstance(data, Refusal):
        return data
    try:
        mint = token2022.parse_mint(data)
    except ValueError as error:
        return Refusal(RefusalCode.NFT_MISSING, f"the ticket's mint cannot be read: {error}")
    holder = mint.base.mint_authority if op is TxOp.VERIFY else mint.permanent_delegate
    return _configured(ctx, holder, "the NFT's authority")


async def group_signer_for(ctx: PipelineContext, group_mint: Pubkey) -> Signer | Refusal | None:
    """Who signs as the group's update authority in a verify: None (the authority) unless a
    rotation is under way; then the configured key the group names on chain."""
    if ctx.keys.previous_authority is None:
        return None
    data = await _mint_data(ctx, str(group_mint))
    if isinstance(data, Refusal):
        return Refusal(RefusalCode.GROUP_MISSING, "the event's group is not on chain")
    try:
        found = group.parse_group_extensions(data).group
    except ValueError as error:
        return Refusal(RefusalCode.GROUP_MISSING, f"the event's group cannot be read: {error}")
    holder = found.update_authority if found is not None else None
    return _configured(ctx, holder, "the group's update authority")


def _configured(ctx: PipelineContext, holder: Pubkey | None, what: str) -> Signer | Refusal:
    """The configured authority that is `holder`, or the refusal naming `what` it is."""
    signer = ctx.keys.signer_of(holder)
    if signer is None:
        return Refusal(
            RefusalCode.AUTHORITY_MISMATCH,
            f"{what} is {holder}, neither the authority nor the previous one",
        )
    return signer


async def planned_rotation(
    ctx: PipelineContext, token_mint: str, target: str
) -> Rotation | Refusal:
    """What a rotation to `target` moves on the ticket's mint, read from the chain now."""
    new = ctx.keys.authority.pubkey()
    previous = ctx.keys.previous_authority
    if target != str(new):
        return Refusal(
            RefusalCode.AUTHORITY_MISMATCH,
            f"the rotation is to {target} but this worker's authority is {new}: "
            + ROTATION_SETTINGS,
        )
    if previous is None:
        return Refusal(
            RefusalCode.AUTHORITY_MISMATCH,
            "this worker has no PREVIOUS_AUTHORITY_* to rotate from: " + ROTATION_SETTINGS,
        )
    data = await _mint_data(ctx, token_mint)
    if isinstance(data, Refusal):
        return data
    try:
        held = authority.held_by(data, previous.pubkey())
        done = authority.held_by(data, new)
    except ValueError as error:
        return Refusal(RefusalCode.NFT_MISSING, f"the ticket's mint cannot be read: {error}")
    if not held.anything:
        if done.anything:
            return Refusal(RefusalCode.ALREADY_ROTATED, f"the NFT's authorities are {new}'s")
        return Refusal(
            RefusalCode.AUTHORITY_MISMATCH,
            f"neither {previous.pubkey()} nor {new} holds the NFT's authorities",
        )
    return Rotation(previous, new, held)
