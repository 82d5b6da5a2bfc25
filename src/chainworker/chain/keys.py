"""Key material: the platform authority, per-ticket mint keys, custodial wallets.

Secrets come from settings. Without them, development clusters get keys generated once in
the state directory (mode 0600) and reused; mainnet refuses to start instead.

Never format a Keypair into a log line: `str(Keypair)` is the base58 secret key. Log
`keypair.pubkey()`. Every seed loaded here is registered with the log redaction, so
a development seed read from the state directory is redacted as a configured one is.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from pathlib import Path
from typing import TYPE_CHECKING, Final
from uuid import UUID

from pydantic import SecretStr
from solders.keypair import Keypair
from solders.pubkey import Pubkey

from chainworker.chain.errors import CONFIG, ChainError
from chainworker.chain.signer import LocalKey, Pkcs11Signer, Signer
from chainworker.chain.token_seed import MIN_SEED_BYTES, TokenSeed
from chainworker.obs import logs

if TYPE_CHECKING:
    from chainworker.config import Settings

AUTHORITY_FILE: Final = "dev-authority.json"

_MINT_DOMAIN: Final = b"chainworker/mint-keypair/v1\x00"
_CUSTODIAL_DOMAIN: Final = b"chainworker/custodial-wallet/v1\x00"
_GROUP_DOMAIN: Final = b"chainworker/event-group-keypair/v1\x00"

_PRODUCTION_CLUSTERS: Final = frozenset({"mainnet"})
# A derivation seed: its bytes, or a secret key in a PKCS#11 token that computes the HMAC.
Seed = bytes | TokenSeed


def _reveal(secret: SecretStr | str | None) -> str | None:
    if secret is None:
        return None
    text = secret.get_secret_value() if isinstance(secret, SecretStr) else secret
    text = text.strip()
    return text or None


def _write_once(path: Path, content: bytes) -> bytes:
    """Create `path` with `content` (mode 0600) unless it exists; return what the file holds.

    Written to a temporary file and linked into place, so concurrent workers starting at once
    agree on one key and nobody reads a half-written file.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(content)
            try:
                os.link(temporary, path)
            except FileExistsError:
                pass
        finally:
            temporary.unlink(missing_ok=True)
    return path.read_bytes()


def _keypair_from_json(text: str, source: str) -> Keypair:
    try:
        values = json.loads(text)
        return Keypair.from_bytes(bytes(values))
    except (ValueError, TypeError) as error:
        # The message names the source only: the content is a secret.
        raise ChainError(CONFIG, f"{source} is not a Solana keypair JSON array") from error


def parse_authority(secret: str) -> Keypair:
    """A keypair from a keypair JSON file path, an inline JSON array or a base58 secret key."""
    return parse_keypair(secret, "AUTHORITY_KEYPAIR")


def parse_keypair(secret: str, setting: str) -> Keypair:
    """A keypair from `setting`'s value: a keypair JSON file path, an inline JSON array or a
    base58 secret key. Errors name the setting or the file, never the content."""
    what = setting.lower().replace("_", " ")
    if secret.startswith("["):
        return _keypair_from_json(secret, setting)
    path = Path(secret).expanduser()
    looks_like_path = os.sep in secret or secret.endswith(".json")
    if looks_like_path or path.is_file():
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as error:
            raise ChainError(
                CONFIG, f"cannot read the {what} file {path}: {error.strerror}"
            ) from error
        return _keypair_from_json(text, f"{what} file {path}")
    try:
        return Keypair.from_base58_string(secret)
    except ValueError:
        raise ChainError(
            CONFIG, f"{setting} is neither a keypair file nor a base58 secret key"
        ) from None


def load_authority(settings: Settings) -> Signer:
    """The platform authority: fee payer, update authority and permanent delegate. A key
    in a PKCS#11 token when its settings are given, else a keypair."""
    if settings.authority_pkcs11_key_label is not None:
        return _token_key(settings, settings.authority_pkcs11_key_label)
    secret = _reveal(settings.authority_keypair)
    if secret is not None:
        return parse_authority(secret)
    if settings.solana_cluster in _PRODUCTION_CLUSTERS:
        raise ChainError(
            CONFIG,
            f"AUTHORITY_KEYPAIR is required on {settings.solana_cluster}: set it to a keypair "
            "JSON file path or a base58 secret key",
        )
    fresh = json.dumps(list(bytes(Keypair()))).encode()
    stored = _write_once(Path(settings.state_dir) / AUTHORITY_FILE, fresh)
    return _keypair_from_json(stored.decode(), "the development authority keypair file")


def load_previous_authority(settings: Settings, authority: Pubkey) -> Signer | None:
    """The authority a rotation replaces, when one is configured: still accepted for the
    tickets the chain shows it holds. ChainError (config) when it is the authority itself."""
    previous: Signer
    if settings.previous_authority_pkcs11_key_label is not None:
        previous = _token_key(settings, settings.previous_authority_pkcs11_key_label)
    else:
        secret = _reveal(settings.previous_authority_keypair)
        if secret is None:
            return None
        previous = parse_keypair(secret, "PREVIOUS_AUTHORITY_KEYPAIR")
        logs.register_secret(str(previous))
    if previous.pubkey() == authority:
        if isinstance(previous, Pkcs11Signer):
            previous.close()  # let go of the token's session
        raise ChainError(
            CONFIG, "PREVIOUS_AUTHORITY_KEYPAIR is the authority itself: set AUTHORITY_* to the "
            "new authority and PREVIOUS_AUTHORITY_* to the one it replaces",
        )
    return previous


def token_of(settings: Settings) -> tuple[str, str, str]:
    """The configured PKCS#11 token: (module, token label, PIN), the PIN registered secret."""
    pin = _reveal(settings.pkcs11_pin) or ""
    logs.register_secret(pin)
    return settings.pkcs11_module or "", settings.pkcs11_token_label or "", pin


def _token_key(settings: Settings, label: str) -> Pkcs11Signer:
    """The Ed25519 key labelled `label` in the configured PKCS#11 token."""
    module, token_label, pin = token_of(settings)
    return Pkcs11Signer(module=module, token_label=token_label, key_label=label, pin=pin)


def load_seed(secret: SecretStr | str | None, state_dir: Path, name: str, *, cluster: str) -> bytes:
    """A derivation secret: the configured value's UTF-8 bytes, at least 32 of them.

    Unset on a development cluster: a random seed generated once in `state_dir/<name>.seed`.
    """
    text = _reveal(secret)
    if text is None:
        if cluster in _PRODUCTION_CLUSTERS:
            raise ChainError(CONFIG, f"{name.upper()} is required on {cluster}")
        content = _write_once(Path(state_dir) / f"{name}.seed", secrets.token_hex(32).encode())
        text = content.decode().strip()
    seed = text.encode("utf-8")
    if len(seed) < MIN_SEED_BYTES:
        raise ChainError(CONFIG, f"{name.upper()} must be at least {MIN_SEED_BYTES} bytes long")
    logs.register_secret(text)
    return seed


def _token_seed(settings: Settings, label: str) -> TokenSeed:
    """The secret key labelled `label` in the configured PKCS#11 token."""
    module, token_label, pin = token_of(settings)
    return TokenSeed(module, token_label, label, pin)


def load_mint_seed(settings: Settings) -> Seed:
    if settings.mint_seed_pkcs11_key_label is not None:
        return _token_seed(settings, settings.mint_seed_pkcs11_key_label)
    return load_seed(
        settings.mint_seed, settings.state_dir, "mint_seed", cluster=settings.solana_cluster
    )


def load_custodial_seed(settings: Settings) -> Seed:
    if settings.custodial_seed_pkcs11_key_label is not None:
        return _token_seed(settings, settings.custodial_seed_pkcs11_key_label)
    return load_seed(
        settings.custodial_seed,
        settings.state_dir,
        "custodial_seed",
        cluster=settings.solana_cluster,
    )


def public_key(signer: Signer) -> Pubkey:
    """The signer's public key; a keypair's read from its 64 bytes (secret, then public):
    its `pubkey()` derives it again each time, which costs as much as a signature."""
    if isinstance(signer, Keypair):
        return Pubkey.from_bytes(bytes(signer)[32:])
    return signer.pubkey()


def _derived_seed(seed: Seed, domain: bytes, tenant_id: UUID, subject_id: UUID) -> bytes:
    message = domain + tenant_id.bytes + subject_id.bytes
    if isinstance(seed, TokenSeed):
        return seed.digest(message)
    if len(seed) < MIN_SEED_BYTES:
        raise ValueError(f"derivation seed must be at least {MIN_SEED_BYTES} bytes")
    return hmac.new(seed, message, hashlib.sha256).digest()


def _derive(seed: Seed, domain: bytes, tenant_id: UUID, subject_id: UUID) -> Keypair:
    return Keypair.from_seed(_derived_seed(seed, domain, tenant_id, subject_id))


def mint_keypair(mint_seed: Seed, tenant_id: UUID, ticket_id: UUID) -> Keypair:
    """The ticket's mint key: the same for every attempt, so a second mint cannot succeed."""
    return _derive(mint_seed, _MINT_DOMAIN, tenant_id, ticket_id)


def mint_signer(mint_seed: Seed, tenant_id: UUID, ticket_id: UUID) -> LocalKey:
    """`mint_keypair` as the pipeline signs with it (the same key)."""
    return LocalKey(_derived_seed(mint_seed, _MINT_DOMAIN, tenant_id, ticket_id))


def group_keypair(mint_seed: Seed, tenant_id: UUID, event_id: UUID) -> Keypair:
    """The event's group mint key: the same for every attempt, so a second group cannot be
    created for the event (the account exists)."""
    return _derive(mint_seed, _GROUP_DOMAIN, tenant_id, event_id)


def custodial_keypair(custodial_seed: Seed, tenant_id: UUID, user_id: UUID) -> Keypair:
    return _derive(custodial_seed, _CUSTODIAL_DOMAIN, tenant_id, user_id)


def custodial_wallet(custodial_seed: Seed, tenant_id: UUID, user_id: UUID) -> Pubkey:
    """The wallet the platform keeps for a user without a registered address."""
    return public_key(custodial_keypair(custodial_seed, tenant_id, user_id))


_FEE_PAYER_DOMAIN: Final = b"chainworker/fee-payer/v1\x00"


def fee_payer_keypair(seed: bytes, index: int) -> Keypair:
    """The `index`-th fee payer derived from the fee-payer seed."""
    if len(seed) < MIN_SEED_BYTES:
        raise ValueError(f"derivation seed must be at least {MIN_SEED_BYTES} bytes")
    digest = hmac.new(seed, _FEE_PAYER_DOMAIN + index.to_bytes(4, "big"), hashlib.sha256)
    return Keypair.from_seed(digest.digest())


def load_fee_payers(settings: Settings, authority: Pubkey) -> list[Signer]:
    """The fee-payer pool: listed keypairs, or `fee_payer_count` derived from a seed; empty
    when none is configured (the authority pays). A payer that is the authority, or one
    listed twice, is a configuration error: the pool would not spread the write locks."""
    listed = _reveal(settings.fee_payer_keypairs)
    labels = settings.fee_payer_pkcs11_key_labels
    payers: list[Signer]
    if listed is not None:
        parts = [part.strip() for part in listed.split(",") if part.strip()]
        payers = [parse_keypair(part, "FEE_PAYER_KEYPAIRS") for part in parts]
    elif labels:
        payers = [_token_key(settings, label.strip()) for label in labels.split(",")
                  if label.strip()]
    elif settings.fee_payer_count:
        seed = load_seed(
            settings.fee_payer_seed, settings.state_dir, "fee_payer_seed",
            cluster=settings.solana_cluster,
        )
        payers = [fee_payer_keypair(seed, index) for index in range(settings.fee_payer_count)]
    else:
        return []
    public = [payer.pubkey() for payer in payers]
    if authority in public:
        raise ChainError(CONFIG, "FEE_PAYER_KEYPAIRS: the platform authority is not a fee payer")
    if len(set(public)) != len(public):
        raise ChainError(CONFIG, "FEE_PAYER_KEYPAIRS: a fee payer is listed twice")
    for payer in payers:
        if isinstance(payer, Keypair):  # a token's key has no secret here
            logs.register_secret(str(payer))
    return payers
