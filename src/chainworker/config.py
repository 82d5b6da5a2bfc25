"""Every knob of chainworker, in one validated settings object.

Read from the environment (plain 12-factor names) and from a `.env` file in the
working directory. A bad value stops the program at start with one line naming
the setting and what is wrong (see `load_settings`).
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit
from uuid import UUID

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from chainworker.lifecycle import metadata
from chainworker.lifecycle.model import Commitment
from chainworker.obs.logs import redact_url

Cluster = Literal["localnet", "devnet", "testnet", "mainnet"]


class SettingsError(Exception):
    """A setting has a bad value; the message is one line naming it."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        case_sensitive=False,
    )

    # --- services -------------------------------------------------------
    # Runtime connection: a role that is neither the tables' owner nor a superuser.
    database_url: str | None = None
    # Owner connection, used by `chainworker migrate`; defaults to database_url.
    database_admin_url: str | None = None
    # Database name used when chainworker picks the server itself (local or embedded).
    database_name: str = Field(default="chainworker", pattern=r"^[a-z_][a-z0-9_]{0,62}$")
    redis_url: str | None = None
    state_dir: Path = Path(".chainworker")
    db_pool_min_size: int = Field(default=2, ge=1, le=100)
    db_pool_max_size: int = Field(default=20, ge=1, le=500)

    # --- solana ---------------------------------------------------------
    solana_rpc_urls: Annotated[list[str], NoDecode] = ["http://127.0.0.1:8899"]
    solana_cluster: Cluster = "localnet"
    commitment: Commitment = Commitment.CONFIRMED
    rpc_timeout_seconds: float = Field(default=5.0, gt=0, le=120)
    rpc_max_attempts: int = Field(default=4, ge=1, le=20)
    blockhash_cache_seconds: float = Field(default=2.0, ge=0, le=60)

    # Key material. Never logged, never returned by the API.
    # The platform authority: a path to a keypair JSON file or a base58 secret key.
    authority_keypair: SecretStr | None = None
    # Or the authority inside an HSM: the PKCS#11 module (.so), the token's label, the
    # Ed25519 key pair's label (CKA_LABEL) and the user PIN. All four, or none.
    pkcs11_module: str | None = None
    pkcs11_token_label: str | None = None
    authority_pkcs11_key_label: str | None = None
    pkcs11_pin: SecretStr | None = None
    # During an authority rotation (`chainworker authority rotate`): the authority being
    # replaced, still accepted for the tickets the chain shows it holds. A keypair file or
    # base58 secret, or a key's label in the PKCS#11 token. Unset once the rotation is done.
    previous_authority_keypair: SecretStr | None = None
    previous_authority_pkcs11_key_label: str | None = None
    mint_seed: SecretStr | None = None
    custodial_seed: SecretStr | None = None
    # Or each seed as a secret key in the PKCS#11 token, which computes the derivation's
    # HMAC itself (chain/token_seed.py): its label there.
    mint_seed_pkcs11_key_label: str | None = None
    custodial_seed_pkcs11_key_label: str | None = None

    # NFT metadata. The uri template may use {tenant_id}, {ticket_id} and {event_id}.
    nft_symbol: str = Field(default="TICKET", max_length=10)
    nft_uri_template: str = Field(default="", max_length=metadata.URI_MAX_BYTES)
    # A new mint joins its event's group (a verify request) as soon as it confirms, when
    # the event has one on chain; off: only `chainworker event verify` and explicit requests.
    auto_verify: bool = True
    # Below this balance the authority is topped up by airdrop (localnet, devnet, testnet)
    # or, on mainnet, the worker refuses to start.
    authority_min_lamports: int = Field(default=1_000_000_000, ge=0)
    # Fee payers, so that transactions do not all write-lock one account (a block gives one
    # writable account at most 40% of its compute units). None set: the authority pays.
    # Either a comma-separated list of keypair files or base58 secret keys, or a seed
    # that `fee_payer_count` payers are derived from (generated once on development
    # clusters when unset). The authority stays mint authority, update authority and
    # permanent delegate, and signs every transaction read-only.
    fee_payer_keypairs: SecretStr | None = None
    # ...or keys in the authority's PKCS#11 token: their labels, comma-separated.
    fee_payer_pkcs11_key_labels: str | None = None
    fee_payer_seed: SecretStr | None = None
    fee_payer_count: int = Field(default=0, ge=0, le=64)
    # A payer below this balance is not used, and is topped up from the authority.
    fee_payer_min_lamports: int = Field(default=100_000_000, ge=0)
    fee_payer_top_up_lamports: int = Field(default=1_000_000_000, ge=1)

    # --- lifecycle policy ----------------------------------------------
    max_retries: int = Field(default=3, ge=0, le=20)
    rebroadcast_interval_seconds: float = Field(default=2.0, gt=0, le=60)
    confirm_interval_seconds: float = Field(default=0.5, gt=0, le=10)
    status_batch_size: int = Field(default=256, ge=1, le=256)
    # The unit limit asked for: (simulated units, with the address search of the holder's
    # account counted per transaction) x margin + headroom. Blocks and priority fees are
    # charged on the limit asked for, not the units used; bench/compute_units.py measures
    # what never fails.
    compute_unit_margin: float = Field(default=1.0, ge=1.0, le=3.0)
    compute_unit_headroom: int = Field(default=1_000, ge=0, le=1_000_000)
    # The unit price: this percentile of the recent prioritization fees of the accounts the
    # transaction write-locks with others (its fee payer), capped. Each replacement of an
    # expired attempt offers `raise_factor` times more, from at least the floor.
    priority_fee_percentile: int = Field(default=50, ge=0, le=100)
    priority_fee_max_microlamports: int = Field(default=100_000, ge=0)
    priority_fee_raise_factor: float = Field(default=1.5, ge=1.0, le=10.0)
    priority_fee_raise_floor_microlamports: int = Field(default=1_000, ge=0)

    # --- worker ---------------------------------------------------------
    queue_name: str = "chainworker:queue"
    worker_max_jobs: int = Field(default=300, ge=1, le=1000)
    # How often an idle or full worker looks at the queue again (Arq's default is 0.5 s,
    # which caps a worker at about max_jobs / 0.5 s jobs per second).
    worker_poll_delay_seconds: float = Field(default=0.05, gt=0, le=5)
    # A job only decides, records and sends. Arq keeps a killed worker's jobs locked
    # for this long (plus 10 s) before another worker may run them.
    job_timeout_seconds: float = Field(default=30.0, ge=1, le=600)
    sweeper_interval_seconds: float = Field(default=5.0, gt=0, le=3600)
    sweeper_grace_seconds: float = Field(default=30.0, ge=0, le=86400)
    outbox_max_attempts: int = Field(default=5, ge=1, le=100)
    outbox_poll_interval_seconds: float = Field(default=0.5, gt=0, le=60)
    # A malformed outbox row is retried after this many seconds, doubling per attempt.
    outbox_retry_seconds: float = Field(default=5.0, ge=0, le=3600)
    # Loopback by default; 0.0.0.0 where a scraper on another host reads /metrics.
    metrics_host: str = Field(default="127.0.0.1", min_length=1, max_length=255)
    metrics_port: int = Field(default=9464, ge=0, le=65535)

    # --- api ------------------------------------------------------------
    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8080, ge=1, le=65535)
    # A verified token is trusted this long before it is looked up again (revocation delay).
    api_auth_cache_seconds: float = Field(default=5.0, ge=0, le=300)
    revocation_required_approvals: int = Field(default=2, ge=1, le=20)
    revocation_ttl_seconds: int = Field(default=86400, ge=60, le=2_592_000)

    # --- logs -----------------------------------------------------------
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["auto", "json", "console"] = "auto"

    @model_validator(mode="after")
    def _check_pkcs11(self) -> Settings:
        token = {
            "PKCS11_MODULE": self.pkcs11_module,
            "PKCS11_TOKEN_LABEL": self.pkcs11_token_label,
            "PKCS11_PIN": self.pkcs11_pin,
        }
        keys = {
            "AUTHORITY_PKCS11_KEY_LABEL": self.authority_pkcs11_key_label,
            "FEE_PAYER_PKCS11_KEY_LABELS": self.fee_payer_pkcs11_key_labels,
            "PREVIOUS_AUTHORITY_PKCS11_KEY_LABEL": self.previous_authority_pkcs11_key_label,
            "MINT_SEED_PKCS11_KEY_LABEL": self.mint_seed_pkcs11_key_label,
            "CUSTODIAL_SEED_PKCS11_KEY_LABEL": self.custodial_seed_pkcs11_key_label,
        }
        missing = [name for name, value in token.items() if not value]
        if not any(keys.values()):
            if len(missing) < len(token):
                raise ValueError("AUTHORITY_PKCS11_KEY_LABEL: the PKCS#11 token is configured "
                                 "but no key in it is used")
            return self
        if missing:
            raise ValueError(f"{missing[0]}: keys in a PKCS#11 token need PKCS11_MODULE, "
                             "PKCS11_TOKEN_LABEL and PKCS11_PIN, all three")
        if self.authority_pkcs11_key_label and self.authority_keypair is not None:
            raise ValueError("AUTHORITY_KEYPAIR: set either it or AUTHORITY_PKCS11_KEY_LABEL, "
                             "not both")
        for name, label, value in (
            ("MINT_SEED", self.mint_seed_pkcs11_key_label, self.mint_seed),
            ("CUSTODIAL_SEED", self.custodial_seed_pkcs11_key_label, self.custodial_seed),
        ):
            if label and value is not None:
                raise ValueError(f"{name}: set either it or {name}_PKCS11_KEY_LABEL, not both")
        if self.previous_authority_pkcs11_key_label and (
            self.previous_authority_keypair is not None
        ):
            raise ValueError("PREVIOUS_AUTHORITY_KEYPAIR: set either it or "
                             "PREVIOUS_AUTHORITY_PKCS11_KEY_LABEL, not both")
        if self.fee_payer_pkcs11_key_labels and (
            self.fee_payer_keypairs is not None or self.fee_payer_seed is not None
            or self.fee_payer_count
        ):
            raise ValueError("FEE_PAYER_PKCS11_KEY_LABELS: set either it or FEE_PAYER_KEYPAIRS "
                             "or FEE_PAYER_SEED with FEE_PAYER_COUNT, not both")
        return self

    @model_validator(mode="after")
    def _check_fee_payers(self) -> Settings:
        listed = self.fee_payer_keypairs is not None
        if listed and (self.fee_payer_seed is not None or self.fee_payer_count):
            raise ValueError(
                "FEE_PAYER_KEYPAIRS: set either the list or FEE_PAYER_SEED with "
                "FEE_PAYER_COUNT, not both"
            )
        if self.fee_payer_seed is not None and not self.fee_payer_count:
            raise ValueError(
                "FEE_PAYER_COUNT: FEE_PAYER_SEED is set; say how many payers to derive from it"
            )
        return self

    @field_validator("nft_uri_template")
    @classmethod
    def _check_uri_template(cls, value: str) -> str:
        # Checked at start: a template that gives a URI over the mint's bound would refuse
        # every mint at signing instead.
        stand_in = UUID(int=0)  # what the mint formats it with: ids of 36 characters
        try:
            uri = value.format(tenant_id=stand_in, ticket_id=stand_in, event_id=stand_in)
        except (AttributeError, KeyError, IndexError, ValueError) as error:
            raise ValueError(
                "may use only {tenant_id}, {ticket_id} and {event_id} "
                f"({type(error).__name__}: {error})"
            ) from None
        size = len(uri.encode("utf-8"))
        if size > metadata.URI_MAX_BYTES:
            raise ValueError(
                f"gives URIs of {size} bytes; a mint's URI is at most {metadata.URI_MAX_BYTES}"
            )
        return value

    @field_validator("solana_rpc_urls", mode="before")
    @classmethod
    def _split_urls(cls, value: object) -> object:
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("solana_rpc_urls")
    @classmethod
    def _check_urls(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("at least one URL is required")
        for url in value:
            # Only scheme, host and port are shown: the rest may hold an API key.
            if not url.startswith(("http://", "https://")):
                raise ValueError(f"{redact_url(url)} is not an http(s) URL")
            try:
                parts = urlsplit(url)
                valid = parts.hostname is not None and (parts.port is None or parts.port > 0)
            except ValueError:
                valid = False
            if not valid:
                raise ValueError(f"{redact_url(url)} has no valid host and port")
        return value

    @field_validator("database_url", "database_admin_url")
    @classmethod
    def _check_dsn(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("postgres://", "postgresql://")):
            raise ValueError("must be a postgresql:// URL")
        return value

    @field_validator("redis_url")
    @classmethod
    def _check_redis(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must be a redis://, rediss:// or unix:// URL")
        return value

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        # repr, str and rich's pretty printer (tracebacks) all read these: URLs carry
        # passwords and API keys, so they are shown as scheme://host:port.
        for name, value in super().__repr_args__():
            if isinstance(value, str) and "://" in value:
                yield name, redact_url(value)
            elif isinstance(value, list):
                yield name, [redact_url(item) if "://" in str(item) else item for item in value]
            else:
                yield name, value


def _one_line(error: ValidationError) -> str:
    first = error.errors()[0]
    name = ".".join(str(part) for part in first["loc"])
    more = len(error.errors()) - 1
    suffix = f" (and {more} more)" if more else ""
    if not name:  # a check across settings: its message names them
        return f"setting {first['msg'].removeprefix('Value error, ')}{suffix}"
    return f"setting {name.upper()}: {first['msg']}{suffix}"


def load_settings(**overrides: object) -> Settings:
    """Build settings from the environment; raise SettingsError with one line on a bad value."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as error:
        raise SettingsError(_one_line(error)) from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings object."""
    return load_settings()
