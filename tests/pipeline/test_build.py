"""Who pays and who signs: a pool payer pays and is the only writable signer, the
authority signs read-only; a mint too large for a second signature is paid by the
authority instead of being refused."""

from __future__ import annotations

import dataclasses
from uuid import uuid4

from solders.hash import Hash
from solders.keypair import Keypair
from solders.message import MessageV0

from chainworker.chain import nft
from chainworker.db.tickets import TicketRow
from chainworker.lifecycle.model import TxOp
from chainworker.pipeline.build import Draft, build_attempt
from tests.pipeline.pipeline import signers_of
from tests.pipeline.test_context import make_context

BUDGET = nft.ComputeBudget(unit_limit=50_000, unit_price_microlamports=10_000)


def mint_draft(event_name: str, payer: Keypair | None) -> Draft:
    ticket = TicketRow(uuid4(), uuid4(), uuid4(), uuid4(), "active", None, "A-1", event_name)
    return Draft(TxOp.MINT, ticket.tenant_id, ticket, None, Keypair().pubkey(),
                 memo=f"cw:{uuid4()}:1", blockhash=Hash.default(), prefunded=0, payer=payer)


def test_a_pool_payer_pays_and_the_authority_signs_read_only() -> None:
    ctx = make_context()
    payer = Keypair()
    built = build_attempt(ctx, mint_draft("Summer Concert", payer), BUDGET)
    message = built.signed.transaction.message
    assert isinstance(message, MessageV0)
    writable, readonly = signers_of(message)
    assert writable[0] == payer.pubkey()  # the fee payer
    assert ctx.keys.authority.pubkey() in readonly
    assert ctx.keys.authority.pubkey() not in writable
    assert built.payer is payer and built.signatures == 3  # payer, mint, authority

    minted = mint_draft("Summer Concert", None).ticket
    ticket = dataclasses.replace(minted, token_mint=str(Keypair().pubkey()), status="minted")
    for op, destination in ((TxOp.TRANSFER, Keypair().pubkey()), (TxOp.BURN, None)):
        draft = Draft(op, ticket.tenant_id, ticket, Keypair().pubkey(), destination,
                      memo="cw:x:1", blockhash=Hash.default(), prefunded=0, payer=payer)
        moved = build_attempt(ctx, draft, BUDGET)
        message = moved.signed.transaction.message
        assert isinstance(message, MessageV0)
        writable, readonly = signers_of(message)
        assert writable == [payer.pubkey()] and readonly == [ctx.keys.authority.pubkey()]
        assert moved.signatures == 2


def test_a_mint_too_large_for_the_payers_signature_is_paid_by_the_authority() -> None:
    ctx = make_context()
    longest = dataclasses.replace(
        ctx, settings=ctx.settings.model_copy(update={
            # two ids of 36 characters: exactly nft.URI_MAX_BYTES
            "nft_uri_template": "https://t.example/{event_id}/{ticket_id}/"
                                + "x" * (nft.URI_MAX_BYTES - 92),
            "nft_symbol": "T" * nft.SYMBOL_MAX_BYTES,
        }),
    )
    draft = mint_draft("Grand Finale World Tour Night " * 2, Keypair())
    built = build_attempt(longest, draft, BUDGET)
    message = built.signed.transaction.message
    assert built.payer is None and built.signatures == 2
    assert message.account_keys[0] == ctx.keys.authority.pubkey()
    assert len(built.signed.raw) <= nft.PACKET_DATA_SIZE
    # the same mint with an ordinary URI keeps its pool payer
    assert build_attempt(ctx, draft, BUDGET).payer is draft.payer
