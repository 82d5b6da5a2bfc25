"""Who signs: the signer interface, and its PKCS#11 implementation for keys held in an HSM.

A signer is anything with `pubkey()` and `sign_message(bytes)`: a solders `Keypair` (a
file or a base58 secret) is one as it is; `LocalKey` is the same key signing through
libsodium, which the pipeline signs with. `Pkcs11Signer` signs inside a
PKCS#11 token (CloudHSM, YubiHSM, Luna; SoftHSM for development) with `CKM_EDDSA`: its
secret never enters this process, and nothing here can ask the token to export it.
`sign_messages` signs many messages at once, in one session, where the signer can.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from nacl.bindings import crypto_sign, crypto_sign_seed_keypair
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from solders.signature import Signature

from chainworker.chain.errors import CONFIG, ChainError

ED25519_KEY_BYTES = 32


@runtime_checkable
class Signer(Protocol):
    def pubkey(self) -> Pubkey: ...

    def sign_message(self, message: bytes) -> Signature: ...


def sign_messages(signer: Signer, messages: Sequence[bytes]) -> list[Signature]:
    """Every message signed by `signer`, in order; one HSM session for all of them."""
    batch = getattr(signer, "sign_messages", None)
    if batch is not None:
        signatures: list[Signature] = batch(messages)
        return signatures
    return [signer.sign_message(message) for message in messages]


class LocalKey:
    """An Ed25519 key held in this process, signing through libsodium (PyNaCl).

    The signatures are a solders Keypair's, byte for byte (Ed25519 is deterministic), in
    about half the time, and the public key is computed once: a Keypair's `pubkey()`
    derives it again on every call. Two signatures per mint make it worth a type. Its
    repr is the public key; a Keypair's str is its secret.
    """

    __slots__ = ("_public", "_secret")

    def __init__(self, seed: bytes) -> None:
        if len(seed) != ED25519_KEY_BYTES:
            raise ValueError(f"an Ed25519 seed is {ED25519_KEY_BYTES} bytes, not {len(seed)}")
        public, self._secret = crypto_sign_seed_keypair(seed)
        self._public = Pubkey.from_bytes(public)

    @classmethod
    def of(cls, keypair: Keypair) -> LocalKey:
        return cls(bytes(keypair)[:ED25519_KEY_BYTES])

    def pubkey(self) -> Pubkey:
        return self._public

    def sign_message(self, message: bytes) -> Signature:
        # crypto_sign answers signature + message; the detached form is not exposed.
        return Signature.from_bytes(crypto_sign(message, self._secret)[:64])

    def __repr__(self) -> str:
        return f"LocalKey({self._public})"

    __str__ = __repr__


def fast_signer(signer: Signer) -> Signer:
    """A Keypair as a LocalKey; any other signer (a token's key) as it is."""
    return LocalKey.of(signer) if isinstance(signer, Keypair) else signer


def create_ed25519_key(module: str, token_label: str, pin: str, key_label: str) -> Pubkey:
    """Make an Ed25519 key pair inside the token, labelled `key_label`: the private half
    sensitive and never extractable. Returns its public key."""
    import pkcs11
    from pkcs11 import Attribute, KeyType, Mechanism
    from pkcs11.util.ec import encode_named_curve_parameters

    token = pkcs11.lib(module).get_token(token_label=token_label)
    with token.open(user_pin=pin, rw=True) as session:
        public, _ = session.generate_keypair(
            KeyType.EC_EDWARDS, mechanism=Mechanism.EC_EDWARDS_KEY_PAIR_GEN,
            public_template={
                Attribute.EC_PARAMS: encode_named_curve_parameters("1.3.101.112"),  # Ed25519
                Attribute.TOKEN: True, Attribute.LABEL: key_label, Attribute.VERIFY: True,
            },
            private_template={
                Attribute.TOKEN: True, Attribute.LABEL: key_label, Attribute.SIGN: True,
                Attribute.SENSITIVE: True, Attribute.EXTRACTABLE: False,
            },
        )
        return Pubkey.from_bytes(_edwards_point(public[Attribute.EC_POINT]))


def _edwards_point(encoded: bytes) -> bytes:
    """The 32 key bytes of CKA_EC_POINT: raw, or a DER OCTET STRING (04 20 ...) as most
    tokens (SoftHSM among them) give it."""
    if len(encoded) == ED25519_KEY_BYTES:
        return encoded
    if len(encoded) == ED25519_KEY_BYTES + 2 and encoded[:2] == b"\x04\x20":
        return encoded[2:]
    raise ChainError(CONFIG, "the PKCS#11 public key is not an Ed25519 point")


@dataclass
class _TokenSession:
    """One logged-in session per token and process: PKCS#11 logs in per application, so
    a second login is refused (CKR_USER_ALREADY_LOGGED_IN), and a session is not to be
    used from two threads at once. Every key of the token shares it."""

    session: Any
    pin_digest: bytes  # a later key of the token must come with the same PIN
    lock: threading.Lock = field(default_factory=threading.Lock)
    users: int = 0


_SESSIONS: dict[tuple[str, str], _TokenSession] = {}
_SESSIONS_LOCK = threading.Lock()


def open_token(module: str, token_label: str, pin: str) -> _TokenSession:
    import pkcs11

    digest = hashlib.sha256(pin.encode()).digest()
    with _SESSIONS_LOCK:
        shared = _SESSIONS.get((module, token_label))
        if shared is not None and not hmac.compare_digest(shared.pin_digest, digest):
            raise ChainError(CONFIG, f"cannot open PKCS#11 token {token_label!r}: PinIncorrect")
        if shared is None:
            try:
                token = pkcs11.lib(module).get_token(token_label=token_label)
                shared = _TokenSession(token.open(user_pin=pin), digest)
            except (pkcs11.exceptions.PKCS11Error, RuntimeError) as error:
                raise ChainError(
                    CONFIG, f"cannot open PKCS#11 token {token_label!r}: {type(error).__name__}"
                ) from None
            _SESSIONS[(module, token_label)] = shared
        shared.users += 1
        return shared


def release_token(module: str, token_label: str) -> None:
    with _SESSIONS_LOCK:
        shared = _SESSIONS[(module, token_label)]
        shared.users -= 1
        if shared.users == 0:
            del _SESSIONS[(module, token_label)]
            shared.session.close()


class TokenKey:
    """Objects labelled `key_label` in a PKCS#11 token (one of each class asked for), in the
    token's one session (see `_TokenSession`); `close()` lets go of the session. The base of
    the token's signers and seeds."""

    def __init__(
        self, module: str, token_label: str, key_label: str, pin: str,
        classes: Sequence[Any], what: str,
    ) -> None:
        import pkcs11  # only where an HSM is configured

        if not Path(module).is_file():
            raise ChainError(CONFIG, f"PKCS11_MODULE {module} is not a file")
        self.key_label = key_label
        self._token = (module, token_label)
        self._shared = open_token(module, token_label, pin)
        try:
            with self._shared.lock:
                self._objects: list[Any] = [
                    self._shared.session.get_key(object_class=kind, label=key_label)
                    for kind in classes
                ]
        except (pkcs11.exceptions.NoSuchKey, pkcs11.exceptions.MultipleObjectsReturned):
            release_token(*self._token)
            raise ChainError(
                CONFIG, f"no single {what} labelled {key_label!r} in the token"
            ) from None
        self._closed = False

    def close(self) -> None:
        """Let go of the token's session (closed with its last key)."""
        if not self._closed:
            self._closed = True
            release_token(*self._token)


class Pkcs11Signer(TokenKey):
    """An Ed25519 key found by label in a PKCS#11 token; signs with CKM_EDDSA."""

    def __init__(self, module: str, token_label: str, key_label: str, pin: str) -> None:
        import pkcs11

        super().__init__(
            module, token_label, key_label, pin,
            (pkcs11.ObjectClass.PRIVATE_KEY, pkcs11.ObjectClass.PUBLIC_KEY), "Ed25519 key pair",
        )
        self._private, public = self._objects
        self._mechanism = pkcs11.Mechanism.EDDSA
        with self._shared.lock:
            point = public[pkcs11.Attribute.EC_POINT]
        self._pubkey = Pubkey.from_bytes(_edwards_point(point))

    def pubkey(self) -> Pubkey:
        return self._pubkey

    def sign_message(self, message: bytes) -> Signature:
        return self.sign_messages([message])[0]

    def sign_messages(self, messages: Sequence[bytes]) -> list[Signature]:
        with self._shared.lock:
            return [
                Signature.from_bytes(self._private.sign(message, mechanism=self._mechanism))
                for message in messages
            ]

    def __repr__(self) -> str:  # never a secret: there is none here
        return f"Pkcs11Signer({self.key_label!r}, {self._pubkey})"

    __str__ = __repr__
