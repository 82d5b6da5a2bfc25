"""Derivation seeds inside a real SoftHSM2 token: the token computes the HMAC, the keys are
the very ones the same seed gives outside it (so importing a seed moves no address), and
the token never gives the seed back."""

from __future__ import annotations

import secrets
import uuid

import pytest
from pkcs11 import Attribute, ObjectClass
from pkcs11.exceptions import AttributeSensitive

from chainworker.chain import keys
from chainworker.chain.errors import ChainError
from chainworker.chain.signer import open_token, release_token
from chainworker.chain.token_seed import TokenSeed, import_seed
from chainworker.config import load_settings
from tests.plugins.softhsm import SoftHsm


def _imported(softhsm: SoftHsm) -> tuple[str, bytes]:
    label, value = f"seed-{uuid.uuid4().hex[:8]}", secrets.token_bytes(48)
    import_seed(softhsm.module, softhsm.token_label, softhsm.pin, label, value)
    return label, value


def test_the_token_derives_the_same_keys_as_the_seed_it_holds(softhsm: SoftHsm) -> None:
    label, value = _imported(softhsm)
    seed = TokenSeed(softhsm.module, softhsm.token_label, label, softhsm.pin)
    try:
        for _ in range(20):
            tenant, subject = uuid.uuid4(), uuid.uuid4()
            assert keys.mint_keypair(seed, tenant, subject) == keys.mint_keypair(
                value, tenant, subject)
            assert keys.group_keypair(seed, tenant, subject) == keys.group_keypair(
                value, tenant, subject)
            assert keys.custodial_wallet(seed, tenant, subject) == keys.custodial_wallet(
                value, tenant, subject)
        assert label in repr(seed) and value.hex() not in repr(seed)
    finally:
        seed.close()


def test_the_token_never_gives_the_seed_back(softhsm: SoftHsm) -> None:
    label, value = _imported(softhsm)
    shared = open_token(softhsm.module, softhsm.token_label, softhsm.pin)
    try:
        key = shared.session.get_key(object_class=ObjectClass.SECRET_KEY, label=label)
        assert key[Attribute.SENSITIVE] is True
        assert key[Attribute.EXTRACTABLE] is False
        with pytest.raises(AttributeSensitive):
            key[Attribute.VALUE]
    finally:
        release_token(softhsm.module, softhsm.token_label)
    seed = TokenSeed(softhsm.module, softhsm.token_label, label, softhsm.pin)
    try:
        assert value not in repr(vars(seed)).encode()
    finally:
        seed.close()


def test_a_missing_label_or_a_short_seed_is_one_line(softhsm: SoftHsm) -> None:
    with pytest.raises(ChainError, match="no single secret key labelled 'absent'"):
        TokenSeed(softhsm.module, softhsm.token_label, "absent", softhsm.pin)
    with pytest.raises(ChainError, match="at least 32 bytes"):
        import_seed(softhsm.module, softhsm.token_label, softhsm.pin, "short", b"x" * 31)


def test_the_settings_pick_the_tokens_seeds(
    softhsm: SoftHsm, monkeypatch: pytest.MonkeyPatch
) -> None:
    mint_label, mint_value = _imported(softhsm)
    custodial_label, custodial_value = _imported(softhsm)
    for name, value in {**softhsm.env("unused"), "MINT_SEED_PKCS11_KEY_LABEL": mint_label,
                        "CUSTODIAL_SEED_PKCS11_KEY_LABEL": custodial_label}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AUTHORITY_PKCS11_KEY_LABEL")
    settings = load_settings()
    mint_seed, custodial_seed = keys.load_mint_seed(settings), keys.load_custodial_seed(settings)
    try:
        assert isinstance(mint_seed, TokenSeed) and isinstance(custodial_seed, TokenSeed)
        tenant, ticket = uuid.uuid4(), uuid.uuid4()
        assert keys.mint_keypair(mint_seed, tenant, ticket) == keys.mint_keypair(
            mint_value, tenant, ticket)
        assert keys.custodial_wallet(custodial_seed, tenant, ticket) == keys.custodial_wallet(
            custodial_value, tenant, ticket)
    finally:
        mint_seed.close()
        custodial_seed.close()


def test_a_rotations_previous_authority_can_be_a_token_key(
    softhsm: SoftHsm, monkeypatch: pytest.MonkeyPatch
) -> None:
    new_label, old_label = (f"authority-{uuid.uuid4().hex[:6]}" for _ in range(2))
    new, old = softhsm.generate_ed25519(new_label), softhsm.generate_ed25519(old_label)
    for name, value in {**softhsm.env(new_label),
                        "PREVIOUS_AUTHORITY_PKCS11_KEY_LABEL": old_label}.items():
        monkeypatch.setenv(name, value)
    settings = load_settings()
    authority = keys.load_authority(settings)
    previous = keys.load_previous_authority(settings, authority.pubkey())
    try:
        assert (authority.pubkey(), previous.pubkey() if previous else None) == (new, old)
        monkeypatch.setenv("PREVIOUS_AUTHORITY_PKCS11_KEY_LABEL", new_label)
        with pytest.raises(ChainError, match="is the authority itself"):
            keys.load_previous_authority(load_settings(), authority.pubkey())
    finally:
        for signer in (authority, previous):
            close = getattr(signer, "close", None)
            if close is not None:
                close()
