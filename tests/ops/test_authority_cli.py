"""`chainworker authority rotate`'s reading of one mint (`classify`), on mint accounts made by
the real Token-2022 program in LiteSVM: the old key's, the new key's, neither's, burned."""

from __future__ import annotations

import uuid

from solders.keypair import Keypair
from solders.litesvm import LiteSVM
from solders.pubkey import Pubkey

from chainworker.chain import authority, nft
from chainworker.ops.authority_cli import CLOSED, FOREIGN, ROTATED, TO_ROTATE, classify
from tests.chain.test_group_svm import new_group
from tests.chain.test_nft_svm import mint_one, send


def test_each_mint_is_read_as_the_chain_has_it() -> None:
    svm = LiteSVM()
    old, new = Keypair(), Keypair()
    for key in (old, new):
        svm.airdrop(key.pubkey(), 100 * 10**9)

    def data(mint: Pubkey) -> bytes:
        account = svm.get_account(mint)
        assert account is not None
        return bytes(account.data)

    held = mint_one(svm, old).mint.pubkey()
    assert classify(data(held), old.pubkey(), new.pubkey()) == TO_ROTATE
    assert classify(data(held), Keypair().pubkey(), new.pubkey()) == FOREIGN
    signed = authority.build_rotation(
        current=old, new=new.pubkey(), mint=held,
        held=authority.held_by(data(held), old.pubkey()), memo="cw:rotate",
        recent_blockhash=svm.latest_blockhash(),
    )
    send(svm, signed.transaction)
    assert classify(data(held), old.pubkey(), new.pubkey()) == ROTATED

    # A burn of a release before mints were closed leaves the mint open with no supply.
    minted = mint_one(svm, old, close_authority=False)
    mint = minted.mint.pubkey()
    send(svm, nft.build_burn(authority=old, mint=mint, holder=minted.holder,
                             memo=f"cw:{uuid.uuid4()}", recent_blockhash=svm.latest_blockhash())
         .transaction)
    assert classify(data(mint), old.pubkey(), new.pubkey()) == CLOSED
    assert classify(None, old.pubkey(), new.pubkey()) == CLOSED
    assert classify(b"\x00" * 10, old.pubkey(), new.pubkey()) == FOREIGN

    # A group mint has no supply, and is rotated all the same.
    group_mint, _ = new_group(svm, old)
    group_data = data(group_mint.pubkey())
    assert classify(group_data, old.pubkey(), new.pubkey(), ticket=False) == TO_ROTATE
