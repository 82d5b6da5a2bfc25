"""The signer interface against a real SoftHSM2 token: signatures Solana accepts, a secret
the token will not give up, and settings that fail closed in one line."""

from __future__ import annotations

import pkcs11
import pytest
from pkcs11 import Attribute, ObjectClass
from solders.keypair import Keypair

from chainworker.chain.errors import ChainError
from chainworker.chain.keys import AUTHORITY_FILE, load_authority, public_key
from chainworker.chain.signer import Pkcs11Signer, Signer, sign_messages
from chainworker.config import SettingsError, load_settings
from tests.plugins.softhsm import SoftHsm

LABEL = "signer-unit"


@pytest.fixture(scope="module")
def hsm(softhsm: SoftHsm) -> SoftHsm:
    softhsm.generate_ed25519(LABEL)
    return softhsm


def signer_of(hsm: SoftHsm, label: str = LABEL, pin: str | None = None) -> Pkcs11Signer:
    return Pkcs11Signer(hsm.module, hsm.token_label, label, pin or hsm.pin)


def test_an_hsm_key_signs_what_solana_verifies(hsm: SoftHsm) -> None:
    signer = signer_of(hsm)
    try:
        assert isinstance(signer, Signer) and isinstance(Keypair(), Signer)
        messages = [f"message {i}".encode() for i in range(20)]
        signatures = sign_messages(signer, messages)
        assert len(set(signatures)) == 20
        assert all(s.verify(signer.pubkey(), m) for s, m in zip(signatures, messages, strict=True))
        assert not signatures[0].verify(signer.pubkey(), messages[1])
        assert signer.sign_message(messages[0]) == signatures[0]  # Ed25519: deterministic
        assert public_key(signer) == signer.pubkey()
        assert LABEL in str(signer) and str(signer.pubkey()) in repr(signer)
    finally:
        signer.close()


def test_the_token_never_gives_the_secret_up(hsm: SoftHsm) -> None:
    token = pkcs11.lib(hsm.module).get_token(token_label=hsm.token_label)
    with token.open(user_pin=hsm.pin) as session:
        private = session.get_key(object_class=ObjectClass.PRIVATE_KEY, label=LABEL)
        assert private[Attribute.SENSITIVE] is True
        assert private[Attribute.EXTRACTABLE] is False
        assert private[Attribute.NEVER_EXTRACTABLE] is True
        with pytest.raises(pkcs11.exceptions.AttributeSensitive):
            private[Attribute.VALUE]
    # What the signer holds: a handle and the public key, no 64-byte secret anywhere.
    signer = signer_of(hsm)
    try:
        held = [value for value in vars(signer).values() if isinstance(value, bytes)]
        assert all(len(value) != 64 for value in held)
        assert not hasattr(signer, "secret") and not hasattr(signer, "__bytes__")
    finally:
        signer.close()


def test_a_wrong_pin_or_label_stops_in_one_line(hsm: SoftHsm) -> None:
    with pytest.raises(ChainError, match="cannot open PKCS#11 token") as raised:
        signer_of(hsm, pin="not-the-pin")
    assert "not-the-pin" not in str(raised.value)
    opened = signer_of(hsm)  # the token's session is open and shared: the PIN still counts
    try:
        with pytest.raises(ChainError, match="PinIncorrect"):
            signer_of(hsm, pin="not-the-pin")
    finally:
        opened.close()
    with pytest.raises(ChainError, match="no single Ed25519 key pair labelled 'absent'"):
        signer_of(hsm, label="absent")
    with pytest.raises(ChainError, match=r"PKCS11_MODULE /nowhere\.so is not a file"):
        Pkcs11Signer("/nowhere.so", hsm.token_label, LABEL, hsm.pin)


def test_settings_choose_the_hsm_authority(hsm: SoftHsm, tmp_path) -> None:
    env = hsm.env(LABEL)
    settings = load_settings(
        state_dir=tmp_path, pkcs11_module=env["PKCS11_MODULE"],
        pkcs11_token_label=env["PKCS11_TOKEN_LABEL"], pkcs11_pin=env["PKCS11_PIN"],
        authority_pkcs11_key_label=LABEL,
    )
    authority = load_authority(settings)
    assert isinstance(authority, Pkcs11Signer)
    assert not (tmp_path / AUTHORITY_FILE).exists()  # no development keypair written
    authority.close()


@pytest.mark.parametrize(
    ("given", "named"),
    [
        ({"pkcs11_module": "/x.so"}, "no key in it is used"),
        ({"fee_payer_pkcs11_key_labels": "a,b", "pkcs11_pin": "1"}, "PKCS11_MODULE"),
        ({"pkcs11_module": "/x.so", "pkcs11_token_label": "t", "pkcs11_pin": "1",
          "fee_payer_pkcs11_key_labels": "a", "fee_payer_count": 2}, "FEE_PAYER_PKCS11"),
        ({"authority_pkcs11_key_label": "k", "pkcs11_pin": "1"}, "PKCS11_MODULE"),
        ({"pkcs11_module": "/x.so", "pkcs11_token_label": "t", "pkcs11_pin": "1",
          "authority_pkcs11_key_label": "k", "authority_keypair": "[1]"}, "AUTHORITY_KEYPAIR"),
    ],
)
def test_half_an_hsm_configuration_is_refused(given: dict[str, str], named: str) -> None:
    with pytest.raises(SettingsError, match=named):
        load_settings(**given)
