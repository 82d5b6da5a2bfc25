"""A derivation seed held in a PKCS#11 token: HMAC-SHA256 computed inside the token.

The mint and custodial keys are derived as HMAC-SHA256(seed, domain || tenant || subject)
(`keys._derive`). With `MINT_SEED_PKCS11_KEY_LABEL` / `CUSTODIAL_SEED_PKCS11_KEY_LABEL`
the seed is a generic secret key in the token (sensitive, never extractable) and the
token computes that HMAC (`CKM_SHA256_HMAC`): the seed never enters this process, and a
seed imported from its old setting gives the very same keys, so moving it into the token
changes no address. The derived per-ticket keys are still made here, as before.

Tokens with CKM_SHA256_HMAC on generic secret keys: SoftHSM2, AWS CloudHSM, Thales Luna,
Entrust nShield, Utimaco; YubiHSM 2 through its PKCS#11 module (as HMAC keys).
"""

from __future__ import annotations

from chainworker.chain.errors import CONFIG, ChainError
from chainworker.chain.signer import TokenKey

MIN_SEED_BYTES = 32


class TokenSeed(TokenKey):
    """A generic secret key found by label; `digest(message)` is its HMAC-SHA256."""

    def __init__(self, module: str, token_label: str, key_label: str, pin: str) -> None:
        import pkcs11

        super().__init__(
            module, token_label, key_label, pin, (pkcs11.ObjectClass.SECRET_KEY,), "secret key"
        )
        (self._key,) = self._objects
        self._mechanism = pkcs11.Mechanism.SHA256_HMAC

    def digest(self, message: bytes) -> bytes:
        """HMAC-SHA256(seed, message), computed by the token."""
        import pkcs11

        with self._shared.lock:
            try:
                result: bytes = self._key.sign(message, mechanism=self._mechanism)
            except pkcs11.exceptions.PKCS11Error as error:
                raise ChainError(
                    CONFIG, f"the token cannot HMAC with {self.key_label!r}: "
                    f"{type(error).__name__}",
                ) from None
        return result

    def __repr__(self) -> str:  # never a secret: there is none here
        return f"TokenSeed({self.key_label!r})"

    __str__ = __repr__


def create_seed(module: str, token_label: str, pin: str, key_label: str) -> None:
    """Make a new 256-bit seed inside the token, labelled `key_label`: it never exists
    outside it (sensitive, never extractable), usable only for HMAC."""
    import pkcs11
    from pkcs11 import Attribute, KeyType

    token = pkcs11.lib(module).get_token(token_label=token_label)
    with token.open(user_pin=pin, rw=True) as session:
        session.generate_key(
            KeyType.GENERIC_SECRET, 256, label=key_label, store=True,
            mechanism=pkcs11.Mechanism.GENERIC_SECRET_KEY_GEN,
            template={
                Attribute.PRIVATE: True, Attribute.SIGN: True, Attribute.VERIFY: True,
                Attribute.SENSITIVE: True, Attribute.EXTRACTABLE: False,
                Attribute.ENCRYPT: False, Attribute.DECRYPT: False,
                Attribute.WRAP: False, Attribute.UNWRAP: False, Attribute.DERIVE: False,
            },
        )


def import_seed(module: str, token_label: str, pin: str, key_label: str, value: bytes) -> None:
    """Store `value` in the token as a generic secret key labelled `key_label`, usable only
    for HMAC: sensitive and never extractable (it cannot be read back)."""
    import pkcs11
    from pkcs11 import Attribute, KeyType, ObjectClass

    if len(value) < MIN_SEED_BYTES:
        raise ChainError(CONFIG, f"a seed must be at least {MIN_SEED_BYTES} bytes long")
    token = pkcs11.lib(module).get_token(token_label=token_label)
    with token.open(user_pin=pin, rw=True) as session:
        session.create_object({
            Attribute.CLASS: ObjectClass.SECRET_KEY,
            Attribute.KEY_TYPE: KeyType.GENERIC_SECRET,
            Attribute.VALUE: value,
            Attribute.LABEL: key_label,
            Attribute.TOKEN: True,
            Attribute.PRIVATE: True,
            Attribute.SIGN: True,
            Attribute.VERIFY: True,
            Attribute.SENSITIVE: True,
            Attribute.EXTRACTABLE: False,
        })
