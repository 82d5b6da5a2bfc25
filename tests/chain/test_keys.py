"""Key loading and deterministic derivation."""

from __future__ import annotations

import json
import stat
import uuid
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import SecretStr
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from solders.signature import Signature

from chainworker.chain import keys
from chainworker.chain.errors import ChainError
from chainworker.chain.signer import LocalKey, fast_signer
from chainworker.config import load_settings

SEED = b"s" * 32
seeds = st.binary(min_size=32, max_size=64)


@given(seed=seeds, tenant=st.uuids(), ticket=st.uuids())
@settings(max_examples=50)
def test_mint_keypair_is_deterministic(seed: bytes, tenant: uuid.UUID, ticket: uuid.UUID) -> None:
    first = keys.mint_keypair(seed, tenant, ticket)
    assert first.pubkey() == keys.mint_keypair(seed, tenant, ticket).pubkey()
    assert bytes(first) == bytes(keys.mint_keypair(bytes(seed), tenant, ticket))


@given(seed=seeds, tenant=st.uuids(), other_tenant=st.uuids(), subject=st.uuids())
@settings(max_examples=50)
def test_derivations_are_tenant_and_domain_separated(
    seed: bytes, tenant: uuid.UUID, other_tenant: uuid.UUID, subject: uuid.UUID
) -> None:
    mint = keys.mint_keypair(seed, tenant, subject).pubkey()
    custodial = keys.custodial_wallet(seed, tenant, subject)
    # The same seed and ids give different keys for a mint and a wallet.
    assert mint != custodial
    if other_tenant != tenant:
        assert keys.mint_keypair(seed, other_tenant, subject).pubkey() != mint
        assert keys.custodial_wallet(seed, other_tenant, subject) != custodial
    # Tenant and subject are not interchangeable.
    if tenant != subject:
        assert keys.mint_keypair(seed, subject, tenant).pubkey() != mint


def test_different_seeds_give_different_keys() -> None:
    tenant, ticket = uuid.uuid4(), uuid.uuid4()
    assert (
        keys.mint_keypair(SEED, tenant, ticket).pubkey()
        != keys.mint_keypair(b"t" * 32, tenant, ticket).pubkey()
    )


def test_custodial_wallet_matches_its_keypair() -> None:
    tenant, user = uuid.uuid4(), uuid.uuid4()
    assert keys.custodial_wallet(SEED, tenant, user) == (
        keys.custodial_keypair(SEED, tenant, user).pubkey()
    )


def test_short_seed_is_rejected() -> None:
    with pytest.raises(ValueError, match="at least 32 bytes"):
        keys.mint_keypair(b"short", uuid.uuid4(), uuid.uuid4())


def test_authority_from_file_json_and_base58(tmp_path: Path) -> None:
    keypair = Keypair()
    path = tmp_path / "authority.json"
    path.write_text(json.dumps(list(bytes(keypair))))
    for secret in (str(path), json.dumps(list(bytes(keypair))), str(keypair)):
        settings_ = load_settings(authority_keypair=secret, state_dir=tmp_path)
        assert keys.load_authority(settings_).pubkey() == keypair.pubkey()


@pytest.mark.parametrize("secret", ["not-a-key", "[1, 2, 3]", "missing/authority.json"])
def test_bad_authority_is_a_config_error_without_the_secret(tmp_path: Path, secret: str) -> None:
    settings_ = load_settings(authority_keypair=secret, state_dir=tmp_path)
    with pytest.raises(ChainError) as raised:
        keys.load_authority(settings_)
    assert raised.value.kind == "config"
    if not secret.endswith(".json"):
        assert secret not in str(raised.value)


def test_dev_authority_is_created_once_private_and_reused(tmp_path: Path) -> None:
    settings_ = load_settings(solana_cluster="localnet", state_dir=tmp_path / "state")
    first = keys.load_authority(settings_)
    path = tmp_path / "state" / keys.AUTHORITY_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert keys.load_authority(settings_).pubkey() == first.pubkey()
    assert [p.name for p in path.parent.iterdir()] == [keys.AUTHORITY_FILE]


def test_mainnet_without_authority_stops_with_a_clear_message(tmp_path: Path) -> None:
    settings_ = load_settings(solana_cluster="mainnet", state_dir=tmp_path)
    with pytest.raises(ChainError, match="AUTHORITY_KEYPAIR is required on mainnet") as raised:
        keys.load_authority(settings_)
    assert raised.value.kind == "config"
    assert not any(tmp_path.iterdir())


def test_seeds_configured_generated_and_refused(tmp_path: Path) -> None:
    configured = "x" * 40
    assert keys.load_seed(SecretStr(configured), tmp_path, "mint_seed", cluster="mainnet") == (
        configured.encode()
    )
    generated = keys.load_seed(None, tmp_path, "mint_seed", cluster="devnet")
    assert len(generated) >= keys.MIN_SEED_BYTES
    assert keys.load_seed(None, tmp_path, "mint_seed", cluster="devnet") == generated
    assert keys.load_seed(None, tmp_path, "custodial_seed", cluster="devnet") != generated
    assert stat.S_IMODE((tmp_path / "mint_seed.seed").stat().st_mode) == 0o600
    with pytest.raises(ChainError, match="MINT_SEED is required on mainnet"):
        keys.load_seed(None, tmp_path / "other", "mint_seed", cluster="mainnet")
    with pytest.raises(ChainError, match="at least 32 bytes"):
        keys.load_seed("short", tmp_path, "mint_seed", cluster="localnet")


def test_settings_helpers_use_the_state_dir(tmp_path: Path) -> None:
    settings_ = load_settings(state_dir=tmp_path, mint_seed="m" * 32)
    assert keys.load_mint_seed(settings_) == b"m" * 32
    assert keys.load_custodial_seed(settings_) == (tmp_path / "custodial_seed.seed").read_bytes()


def test_fee_payers_are_derived_from_their_seed_in_order(tmp_path: Path) -> None:
    settings = load_settings(state_dir=tmp_path, fee_payer_seed="f" * 32, fee_payer_count=3)
    payers = keys.load_fee_payers(settings, Keypair().pubkey())
    assert all(isinstance(p, Keypair) for p in payers)
    assert [bytes(p) for p in payers] == [  # type: ignore[call-overload]
        bytes(keys.fee_payer_keypair(b"f" * 32, i)) for i in range(3)
    ]
    assert len({p.pubkey() for p in payers}) == 3
    # domain-separated from the other derivations of the same seed
    assert payers[0].pubkey() != keys.mint_keypair(b"f" * 32, uuid.UUID(int=0),
                                                   uuid.UUID(int=0)).pubkey()


def test_fee_payers_are_listed_as_files_or_secrets(tmp_path: Path) -> None:
    first, second = Keypair(), Keypair()
    path = tmp_path / "payer.json"
    path.write_text(json.dumps(list(bytes(first))))
    settings = load_settings(state_dir=tmp_path,
                             fee_payer_keypairs=f"{path}, {second}")
    loaded = keys.load_fee_payers(settings, Keypair().pubkey())
    assert [p.pubkey() for p in loaded] == [first.pubkey(), second.pubkey()]
    assert keys.load_fee_payers(load_settings(state_dir=tmp_path), Keypair().pubkey()) == []


def test_a_pool_that_would_not_spread_the_write_locks_is_refused(tmp_path: Path) -> None:
    authority, payer = Keypair(), Keypair()
    with pytest.raises(ChainError, match="authority is not a fee payer"):
        keys.load_fee_payers(
            load_settings(state_dir=tmp_path, fee_payer_keypairs=str(authority)),
            authority.pubkey(),
        )
    with pytest.raises(ChainError, match="listed twice"):
        keys.load_fee_payers(
            load_settings(state_dir=tmp_path, fee_payer_keypairs=f"{payer},{payer}"),
            authority.pubkey(),
        )
    with pytest.raises(ChainError, match="FEE_PAYER_KEYPAIRS is neither") as caught:
        keys.load_fee_payers(
            load_settings(state_dir=tmp_path, fee_payer_keypairs="not-a-key"),
            authority.pubkey(),
        )
    assert "not-a-key" not in str(caught.value)


def test_mainnet_needs_the_fee_payer_seed(tmp_path: Path) -> None:
    settings = load_settings(state_dir=tmp_path, fee_payer_count=2, solana_cluster="mainnet")
    with pytest.raises(ChainError, match="FEE_PAYER_SEED is required"):
        keys.load_fee_payers(settings, Keypair().pubkey())


@given(seed=st.binary(min_size=32, max_size=32), message=st.binary(max_size=1232))
@settings(max_examples=100)
def test_a_local_key_signs_as_its_keypair_byte_for_byte(seed: bytes, message: bytes) -> None:
    keypair = Keypair.from_seed(seed)
    local = LocalKey.of(keypair)
    assert local.pubkey() == keypair.pubkey() == LocalKey(seed).pubkey()
    signature = local.sign_message(message)
    assert signature == keypair.sign_message(message)
    assert signature.verify(keypair.pubkey(), message)
    assert not signature.verify(keypair.pubkey(), message + b"\x00")


@given(seed=seeds, tenant=st.uuids(), ticket=st.uuids())
@settings(max_examples=25)
def test_the_mint_signer_is_the_mint_keypair(
    seed: bytes, tenant: uuid.UUID, ticket: uuid.UUID
) -> None:
    keypair = keys.mint_keypair(seed, tenant, ticket)
    signer = keys.mint_signer(seed, tenant, ticket)
    assert signer.pubkey() == keypair.pubkey()
    assert signer.sign_message(b"mint") == keypair.sign_message(b"mint")


def test_a_local_key_never_shows_its_secret() -> None:
    keypair = Keypair()
    local = fast_signer(keypair)
    assert isinstance(local, LocalKey)
    for shown in (repr(local), str(local), f"{local}"):
        assert str(keypair) not in shown and str(keypair.pubkey()) in shown
    assert not hasattr(local, "__dict__")  # nothing else to print by accident


def test_a_local_key_takes_a_32_byte_seed_only() -> None:
    for size in (0, 31, 33, 64):
        with pytest.raises(ValueError, match="32 bytes"):
            LocalKey(b"k" * size)


def test_fast_signer_leaves_other_signers_as_they_are() -> None:
    class Other:
        def pubkey(self) -> Pubkey:
            return Pubkey.default()

        def sign_message(self, message: bytes) -> Signature:
            return Signature.default()

    other = Other()
    assert fast_signer(other) is other
