"""Decide and record attempts: check each ticket, build and sign, insert the rows.

What goes into each transaction is decided here (wallets, where the NFT is, the blockhash,
the budget; for a verify, the event's group and whether the ticket's mint can join it, read
from its extensions on chain); the transaction itself is made by `build`.

`prepare_attempts` is the one path from a locked request to a recorded attempt: a job's
request (alone or in a group, `record.py`) and a replacement after an expiry (`settle.py`)
both go through it. It runs inside the caller's tenant transaction; nothing here sends:
the caller sends the recorded bytes after the commit.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TypeVar
from uuid import UUID

from solders.hash import Hash
from solders.pubkey import Pubkey
from solders.system_program import ID as SYSTEM_PROGRAM_ID

from chainworker.chain import metadata, nft, token2022
from chainworker.chain.errors import UNEXPECTED_ACCOUNT, ChainError
from chainworker.chain.token2022 import TOKEN_2022_PROGRAM_ID
from chainworker.chain.views import AccountView, MintState
from chainworker.db import audit, event_groups, requests, tickets, transactions
from chainworker.db.pool import Connection
from chainworker.db.requests import RequestRow
from chainworker.lifecycle import ticket_rules
from chainworker.lifecycle.metadata import check_change
from chainworker.lifecycle.model import TxOp
from chainworker.lifecycle.ticket_rules import Refusal, RefusalCode
from chainworker.obs import logs
from chainworker.pipeline import authorities
from chainworker.pipeline.build import Built, Closes, Draft, build_attempt
from chainworker.pipeline.context import PipelineContext
from chainworker.pipeline.fees import attempt_cost, compute_budget

log = logs.get_logger(__name__)
_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class Prepared:
    """An attempt recorded and ready to send."""

    tx_id: UUID
    signature: str
    raw: bytes
    estimated_cost: int


class Busy:
    """The ticket has a live transaction, or an earlier request of it waits: not yet."""


BUSY = Busy()

# What became of one request: recorded, refused (not yet recorded as such), or not yet.
Prepare = Prepared | Refusal | Busy


class Refused(Exception):
    """The request cannot be carried out as asked; the ticket stays unchanged."""

    def __init__(self, code: RefusalCode, message: str) -> None:
        super().__init__(message)
        self.refusal = Refusal(code, message)


@dataclass(frozen=True, slots=True)
class AttemptOf:
    """Which attempt of its request is being prepared, and from where."""

    attempt: int
    parent_tx_id: UUID | None = None
    job_id: str | None = None


@dataclass(frozen=True, slots=True)
class Checked:
    """A request whose ticket (and transfer) allow it, all three locked."""

    request: RequestRow
    ticket: tickets.TicketRow
    transfer: tickets.TransferRow | None
    group: Pubkey | None = None  # a verify: the event's group the mint joins

    @property
    def op(self) -> TxOp:
        return self.request.operation

    @property
    def holder(self) -> UUID:
        assert self.ticket.user_id is not None  # check_request refuses a ticket without one
        return self.ticket.user_id


@dataclass(frozen=True, slots=True)
class RecentBlockhash:
    hash: Hash
    last_valid_block_height: int


async def prepare_attempts(
    ctx: PipelineContext,
    conn: Connection,
    ready: Sequence[RequestRow],
    attempts: dict[UUID, AttemptOf],
    *,
    seen_height: int = 0,
) -> dict[UUID, Prepare]:
    """Lock, check, sign and record the next attempt of each request (all of one tenant).

    Requests and tickets are locked in id order. A refusal is returned, not recorded (the
    caller records it with the request); nothing is written for a refused or busy request.
    `seen_height` is a block height already observed: the blockhash must outlive it.
    """
    if not ready:
        return {}
    tenant_id = ready[0].tenant_id
    locked = await tickets.lock_tickets(conn, sorted({r.ticket_id for r in ready}))
    transfer_ids = sorted({r.transfer_id for r in ready if r.transfer_id is not None})
    transfers = await tickets.lock_transfers(conn, transfer_ids) if transfer_ids else {}
    busy = await transactions.tickets_with_live_attempt(conn, list(locked))
    # Acceptance order is kept when a request first starts; a replacement continues it.
    firsts = [r for r in ready if attempts[r.id].parent_tx_id is None]
    waiting = await requests.earlier_live(conn, firsts) if firsts else set()
    verifies = [r.ticket_id for r in ready if r.operation is TxOp.VERIFY]
    verified = await requests.verified_tickets(conn, verifies) if verifies else set()
    out: dict[UUID, Prepare] = {}
    checked: list[Checked] = []
    for request in ready:
        if request.ticket_id in busy or request.id in waiting:
            out[request.id] = BUSY  # it waits for the live transaction or the earlier request
            continue
        transfer = transfers.get(request.transfer_id) if request.transfer_id else None
        try:
            item = check_request(
                request, locked.get(request.ticket_id), transfer,
                verified=request.ticket_id in verified,
            )
        except Refused as refused:
            out[request.id] = refused.refusal
            continue
        busy.add(item.ticket.id)  # one attempt per ticket per transaction
        checked.append(item)
    if verifies and checked:
        checked = await _with_groups(ctx, conn, checked, out)
    if not checked:
        return out
    wallets = await wallets_of(
        ctx, conn, tenant_id, sorted({user for item in checked for user in users_of(item)})
    )
    hash_, last_valid = await ctx.rpc.latest_blockhash(valid_beyond=seen_height)
    blockhash = RecentBlockhash(hash_, last_valid)
    burned = await burn_accounts(ctx, [item for item in checked if item.op is TxOp.BURN])
    new: list[transactions.NewAttempt] = []
    for item in checked:
        try:
            new.append(await sign_attempt(
                ctx, item, wallets, blockhash, attempts[item.request.id], burned
            ))
        except Refused as refused:
            out[item.request.id] = refused.refusal
    if new and await ctx.spend_limits.applies(conn, tenant_id):
        # Weighed together, in order, with what is spent and in flight; those that fit are
        # reserved and recorded with their reservation, in this transaction.
        fits = []
        for attempt, why in zip(
            new, await audit.reserve_spend(conn, [a.estimated_lamports for a in new]),
            strict=True,
        ):
            if why is None:
                fits.append(replace(attempt, spend_reserved=attempt.estimated_lamports))
            else:
                out[attempt.request_id] = Refusal(RefusalCode.SPEND_LIMIT, why)
        new = fits
    if not new:
        return out
    tx_ids = await transactions.record_attempts(conn, new)
    await requests.mark_submitted(conn, [(a.request_id, a.signature, a.attempt) for a in new])
    for attempt, tx_id in zip(new, tx_ids, strict=True):
        out[attempt.request_id] = Prepared(
            tx_id, attempt.signature, attempt.serialized_tx, attempt.estimated_lamports
        )
    return out


def check_request(
    request: RequestRow, ticket: tickets.TicketRow | None, transfer: tickets.TransferRow | None,
    *, verified: bool = False,
) -> Checked:
    """The request with its ticket, when the ticket's state allows it; else Refused.
    `verified`: the ticket is a member of its event's group already."""
    if ticket is None:
        raise Refused(RefusalCode.UNKNOWN_TICKET, f"no ticket {request.ticket_id} for this tenant")
    if request.transfer_id is not None and (transfer is None or transfer.ticket_id != ticket.id):
        raise Refused(RefusalCode.TRANSFER_MISSING, "no such transfer for this ticket")
    verdict = ticket_rules.check_operation(
        request.operation,
        ticket.status,
        token_mint=ticket.token_mint,
        transfer_status=transfer.status if transfer else None,
        burn_reason=request.reason,
        verified=verified,
        rotation=request.changes is not None and request.changes.authority is not None,
    )
    if isinstance(verdict, Refusal):
        raise Refused(verdict.code, verdict.message)
    if ticket.user_id is None:
        raise Refused(RefusalCode.NO_HOLDER, "the ticket has no holder")
    if transfer is not None and transfer.from_user_id not in (None, ticket.user_id):
        # An earlier transfer of the chain did not happen: this one's sender has nothing.
        raise Refused(RefusalCode.NOT_HOLDER, "the transfer's sender does not hold the ticket")
    return Checked(request, ticket, transfer)


def users_of(item: Checked) -> list[UUID]:
    """The users whose wallets the transaction touches (a verify touches none)."""
    if item.op is TxOp.VERIFY:
        return []
    users = [item.holder]
    if item.transfer is not None:
        users += [u for u in (item.transfer.from_user_id, item.transfer.to_user_id) if u]
    return sorted(set(users))


async def wallets_of(
    ctx: PipelineContext, conn: Connection, tenant_id: UUID, user_ids: list[UUID]
) -> dict[UUID, Pubkey | Refusal]:
    """Each user's wallet now: registered, else the custodial address derived for them; a
    registered address that is not a public key refuses the requests that need it.

    Where an NFT is sent (a mint's holder, a transfer's recipient); never where one is
    taken from: a user may register a new wallet after the NFT reached the old one.
    """
    registered = await tickets.wallet_addresses(conn, user_ids)
    wallets: dict[UUID, Pubkey | Refusal] = {}
    for user_id in user_ids:
        address = registered.get(user_id)
        if address is None:
            wallets[user_id] = ctx.keys.custodial_wallet(tenant_id, user_id)
            continue
        try:
            wallets[user_id] = Pubkey.from_string(address)
        except ValueError:
            message = f"wallet {address!r} is not a public key"
            wallets[user_id] = Refusal(RefusalCode.INVALID_WALLET, message)
    return wallets


async def sign_attempt(
    ctx: PipelineContext,
    item: Checked,
    wallets: dict[UUID, Pubkey | Refusal],
    blockhash: RecentBlockhash,
    of: AttemptOf,
    burned: Mapping[Pubkey, AccountView | None] | None = None,
) -> transactions.NewAttempt:
    """Build and sign one attempt of a checked request: the row to record. No writes.

    A transfer or burn starts where the NFT is (`source_of`); a mint or transfer ends in
    the wallet recorded with the attempt, which the outcome then writes to the ticket. A
    burn closes what `closes_of` finds closable in `burned` (`burn_accounts`; read here
    when not given), and records the lamports it gives back.
    """
    request, ticket = item.request, item.ticket
    for user in users_of(item):
        if isinstance(found := wallets[user], Refusal):
            raise Refused(found.code, found.message)
    op = item.op
    rotation: authorities.Rotation | None = None
    change = request.changes
    if op is TxOp.METADATA_UPDATE and change is not None and change.authority is not None:
        assert ticket.token_mint is not None  # the rules: an update needs a minted ticket
        rotation = _refused_or(
            await authorities.planned_rotation(ctx, ticket.token_mint, change.authority)
        )
        signer = rotation.current  # read with the plan: no second read of the mint
    else:
        signer = _refused_or(await authorities.signer_for(ctx, op, ticket.token_mint))
    group_signer = None
    if op is TxOp.VERIFY:
        assert item.group is not None
        group_signer = _refused_or(await authorities.group_signer_for(ctx, item.group))
    moves = op in (TxOp.TRANSFER, TxOp.BURN)
    source = await source_of(ctx, ticket, of.attempt) if moves else None
    destination: Pubkey | None = None
    if op is TxOp.TRANSFER:
        assert item.transfer is not None
        if item.transfer.to_user_id is None:
            raise Refused(RefusalCode.NO_HOLDER, "the transfer has no recipient")
        destination = _wallet(wallets, item.transfer.to_user_id)
    elif op is TxOp.MINT:
        destination = _wallet(wallets, item.holder)
    closes: Closes | None = None
    if op is TxOp.BURN:
        assert source is not None
        if burned is None:
            burned = await burn_accounts(ctx, [item])
        closes = closes_of(ctx, ticket, source, burned, signer.pubkey())
    draft = Draft(
        op, request.tenant_id, ticket, source, destination, memo=f"cw:{request.id}:{of.attempt}",
        blockhash=blockhash.hash, prefunded=await _prefunded_mint(ctx, request, of.attempt),
        payer=ctx.payers.take(), closes=closes, group=item.group,
        update=(
            await planned_update(ctx, item, signer.pubkey())
            if op is TxOp.METADATA_UPDATE and rotation is None else None
        ),
        authority=signer, rotation=rotation, group_authority=group_signer,
    )

    async def unbudgeted() -> nft.SignedTx:
        return _build(ctx, draft, None).signed

    budget = await compute_budget(ctx, draft, of.attempt, unbudgeted)
    built = _build(ctx, draft, budget)
    signed, rent = built.signed, built.rent
    cost = attempt_cost(built.signatures, budget, rent)
    ctx.payers.charge(built.payer, budget.unit_limit or 0, cost)
    return transactions.NewAttempt(
        tenant_id=request.tenant_id,
        ticket_id=ticket.id,
        event_id=ticket.event_id,
        transfer_id=request.transfer_id,
        request_id=request.id,
        op=request.operation,
        signature=str(signed.signature),
        blockhash=str(blockhash.hash),
        last_valid_block_height=blockhash.last_valid_block_height,
        serialized_tx=signed.raw,
        attempt=of.attempt,
        parent_tx_id=of.parent_tx_id,
        job_id=of.job_id,
        max_retries=ctx.policy.max_retries,
        estimated_lamports=cost,
        estimated_rent=rent,
        rent_reclaimed=built.reclaimed,
        source=str(source) if source is not None else None,
        destination=str(destination) if destination is not None else None,
    )


async def _with_groups(
    ctx: PipelineContext, conn: Connection, checked: list[Checked], out: dict[UUID, Prepare]
) -> list[Checked]:
    """The checked requests, each verify with the group it joins; a verify that cannot go
    yet is set in `out` (busy while its event's group is being created, else refused)."""
    verifies = [item for item in checked if item.op is TxOp.VERIFY]
    groups = await event_groups.of_events(conn, [item.ticket.event_id for item in verifies])
    ready: dict[UUID, Pubkey] = {}
    for item in verifies:
        found = groups.get(item.ticket.event_id)
        if found is None:
            out[item.request.id] = Refusal(
                RefusalCode.GROUP_MISSING,
                "the ticket's event has no group on chain yet "
                "(create it with: chainworker event create-group)",
            )
        elif found.is_live:
            out[item.request.id] = BUSY  # its creation is in flight: verify once it lands
        else:
            ready[item.request.id] = Pubkey.from_string(found.group_mint)
    items = [item for item in verifies if item.request.id in ready]
    states = await asyncio.gather(*(_mint_of(ctx, item.ticket) for item in items))
    # During a rotation a mint may still have the previous authority as its mint authority.
    platform = {s.pubkey() for s in (ctx.keys.authority, ctx.keys.previous_authority) if s}
    for item, state in zip(items, states, strict=True):
        refusal = membership_refusal(item.ticket, state, platform)
        if refusal is not None:
            out[item.request.id] = refusal
            del ready[item.request.id]
    return [
        replace(item, group=ready[item.request.id]) if item.op is TxOp.VERIFY else item
        for item in checked
        if item.op is not TxOp.VERIFY or item.request.id in ready
    ]


async def _mint_of(ctx: PipelineContext, ticket: tickets.TicketRow) -> MintState | Refusal:
    """The ticket's mint as the chain has it; a refusal when there is no mint there."""
    assert ticket.token_mint is not None  # the rules refuse a verify without one
    try:
        state = await ctx.rpc.get_mint_state(Pubkey.from_string(ticket.token_mint))
    except ValueError:
        return Refusal(RefusalCode.NFT_MISSING, f"{ticket.token_mint!r} is not an address")
    except ChainError as error:
        if error.kind != UNEXPECTED_ACCOUNT:
            raise  # could not read it now: the job tries again
        return Refusal(RefusalCode.NFT_MISSING, f"the ticket's mint is not a mint: {error}")
    if state is None:
        return Refusal(RefusalCode.NFT_MISSING, "no mint account on chain for the ticket")
    return state


def membership_refusal(
    ticket: tickets.TicketRow, state: MintState | Refusal, platform: Collection[Pubkey]
) -> Refusal | None:
    """Why the ticket's mint cannot join a group now, read from its extensions; None if it can.

    A mint made before event collections has no GroupMemberPointer (Token-2022 adds it only
    before InitializeMint) and no mint authority (InitializeMember needs its signature): it
    can never be a member.
    """
    if isinstance(state, Refusal):
        return state
    if state.supply == 0:
        return Refusal(RefusalCode.BURNED, "the ticket's NFT was burned on chain")
    member = state.groups.member
    if member is not None:
        return Refusal(
            RefusalCode.ALREADY_VERIFIED,
            f"the mint is member {member.member_number} of group {member.group} already",
        )
    pointer = state.groups.member_pointer
    if pointer is None or pointer.member_address != state.address:
        return Refusal(
            RefusalCode.NOT_A_MEMBER_MINT,
            "the mint has no GroupMemberPointer to itself (minted before event collections; "
            "Token-2022 adds it only when a mint is created), so it can never join a group",
        )
    if state.mint_authority not in platform:
        return Refusal(
            RefusalCode.NOT_A_MEMBER_MINT,
            "the mint's mint authority is not the platform's, and InitializeMember needs "
            "its signature",
        )
    return None


def _wallet(wallets: dict[UUID, Pubkey | Refusal], user: UUID) -> Pubkey:
    found = wallets[user]
    assert isinstance(found, Pubkey)  # refusals were raised above
    return found


async def source_of(ctx: PipelineContext, ticket: tickets.TicketRow, attempt: int) -> Pubkey:
    """Where the ticket's NFT is now, for a transfer or burn to start from.

    The wallet chainworker last sent it to (`tickets.wallet_address`) is the answer while
    only the platform can have moved it: a custodial wallet, on a first attempt. Otherwise
    the chain says: an external holder can move the NFT on their own, and an earlier
    attempt of this request may have landed after all.
    """
    assert ticket.user_id is not None and ticket.token_mint is not None
    recorded = _public_key(ticket.wallet_address)
    custodial = ctx.keys.custodial_wallet(ticket.tenant_id, ticket.user_id)
    if recorded is not None and recorded == custodial and attempt == 1:
        return recorded
    found = await ctx.rpc.get_token_holder(Pubkey.from_string(ticket.token_mint))
    if found is None:
        raise Refused(RefusalCode.NFT_MISSING, "no wallet holds the ticket's NFT on chain")
    owner = found[0]
    if recorded is not None and owner != recorded:
        log.warning("the NFT is not where it was sent; moving it from where it is",
                    ticket_id=str(ticket.id), recorded=str(recorded), holder=str(owner))
    return owner


def _refused_or(value: _T | Refusal) -> _T:
    if isinstance(value, Refusal):
        raise Refused(value.code, value.message)
    return value


async def planned_update(
    ctx: PipelineContext, item: Checked, authority: Pubkey
) -> metadata.Plan:
    """How the request's change is carried out on the ticket's mint as it is on chain now
    (its size and balance, the metadata it holds): never as the database remembers it.

    The change's rules are checked again here: a request is carried out only as they are
    now, whatever way it came in.
    """
    change, ticket = item.request.changes, item.ticket
    assert change is not None and ticket.token_mint is not None  # the table and the rules
    try:
        change = check_change(dict(change.fields), list(change.remove))
    except ValueError as error:
        raise Refused(RefusalCode.INVALID_INPUT, str(error)) from None
    account = await ctx.rpc.get_account(Pubkey.from_string(ticket.token_mint))
    if account is None or account.owner != TOKEN_2022_PROGRAM_ID:
        raise Refused(RefusalCode.NFT_MISSING, "the ticket's mint is not on chain")
    try:
        mint = metadata.read_mint(account.data, account.lamports)
    except ValueError as error:
        message = f"the ticket's mint cannot be read: {error}"
        raise Refused(RefusalCode.NFT_MISSING, message) from None
    if mint.update_authority != authority:
        raise Refused(
            RefusalCode.NFT_MISSING, "the ticket's metadata is not the platform's to update"
        )
    return metadata.plan_update(mint, change)


def _custodial_account(ctx: PipelineContext, ticket: tickets.TicketRow, mint: Pubkey) -> Pubkey:
    """The token account of the ticket's user's custodial wallet for the mint."""
    assert ticket.user_id is not None
    return nft.holder_token_account(ctx.keys.custodial_wallet(ticket.tenant_id, ticket.user_id),
                                    mint)


async def burn_accounts(
    ctx: PipelineContext, items: Sequence[Checked]
) -> dict[Pubkey, AccountView | None]:
    """The chain's word on what the burns of `items` may close: each ticket's mint and its
    user's custodial token account, read together (100 accounts per call, so a group of
    burns costs one call per 50; a burn alone, one). A ticket whose mint is not a public
    key is left out: its build refuses it."""
    wanted: list[Pubkey] = []
    for item in items:
        mint = _public_key(item.ticket.token_mint)
        if mint is not None and item.ticket.user_id is not None:
            wanted += [mint, _custodial_account(ctx, item.ticket, mint)]
    if not wanted:
        return {}
    return dict(zip(wanted, await ctx.rpc.get_accounts(wanted), strict=True))


def closes_of(
    ctx: PipelineContext,
    ticket: tickets.TicketRow,
    source: Pubkey,
    accounts: Mapping[Pubkey, AccountView | None],
    authority: Pubkey,
) -> Closes | None:
    """What the burn of the ticket's NFT from `source` closes: its mint, when the chain shows
    the mint with the platform as its close authority and the one token still there; then
    the holder's token account too, when `source` is the user's custodial wallet (the
    platform signs for it) and the account holds that token. None when the mint was made
    without a close authority (before this release), or the answer is anything else: the
    burn then closes nothing, as before, rather than risk a close that fails it. An
    external holder's token account is theirs: never closed.

    The lamports are the accounts' when read: exactly what closing them returns, unless
    someone sends lamports to one before the burn lands (they come back too, uncounted).
    """
    mint = _public_key(ticket.token_mint)
    mint_view = accounts.get(mint) if mint is not None else None
    if mint is None or mint_view is None or not _closable_mint(mint_view, authority):
        return None
    assert ticket.user_id is not None  # check_request refuses a ticket without a holder
    if source != ctx.keys.custodial_wallet(ticket.tenant_id, ticket.user_id):
        return Closes(mint_view.lamports)
    account = accounts.get(_custodial_account(ctx, ticket, mint))
    if not _closable_account(account, mint, source):
        return Closes(mint_view.lamports)
    assert account is not None
    holder = ctx.keys.custodial_keypair(ticket.tenant_id, ticket.user_id)
    return Closes(mint_view.lamports, holder, account.lamports)


def _closable_mint(view: AccountView, authority: Pubkey) -> bool:
    """A Token-2022 mint of one token (0 once burned) that `authority` may close."""
    if view.owner != TOKEN_2022_PROGRAM_ID:
        return False
    try:
        parsed = token2022.parse_mint(view.data)
    except ValueError:
        return False
    base = parsed.base
    return base.is_initialized and base.supply == 1 and parsed.close_authority == authority


def _closable_account(view: AccountView | None, mint: Pubkey, owner: Pubkey) -> bool:
    """`owner`'s Token-2022 account holding the mint's one token (empty once burned), with no
    close authority of its own: the owner's signature closes it."""
    if view is None or view.owner != TOKEN_2022_PROGRAM_ID:
        return False
    try:
        parsed = token2022.parse_token_account(view.data)
    except ValueError:
        return False
    return (parsed.mint, parsed.owner, parsed.amount) == (mint, owner, 1) and (
        parsed.close_authority is None and not parsed.frozen
    )


def _public_key(text: str | None) -> Pubkey | None:
    if text is None:
        return None
    try:
        return Pubkey.from_string(text)
    except ValueError:
        return None


async def _prefunded_mint(ctx: PipelineContext, request: RequestRow, attempt: int) -> int:
    """Lamports already at the mint address; only later attempts look (one read each)."""
    if request.operation != TxOp.MINT or attempt == 1:
        return 0
    return await prefunded_mint_lamports(ctx, request.tenant_id, request.ticket_id)


async def prefunded_mint_lamports(ctx: PipelineContext, tenant_id: UUID, ticket_id: UUID) -> int:
    """Lamports someone sent to the ticket's mint address before the mint was created there.

    The address is secret until a first attempt is sent; once it is public, anyone can
    fund it and so make CreateAccount fail. 0 when the address holds anything else.
    """
    account = await ctx.rpc.get_account(ctx.keys.mint_address(tenant_id, ticket_id))
    if account is None or account.owner != SYSTEM_PROGRAM_ID or account.data:
        return 0
    return account.lamports


def _build(ctx: PipelineContext, draft: Draft, budget: nft.ComputeBudget | None) -> Built:
    """`build_attempt`, a value the chain cannot hold refusing the request."""
    try:
        return build_attempt(ctx, draft, budget)
    except ValueError as error:
        raise Refused(RefusalCode.INVALID_INPUT, str(error)) from None
