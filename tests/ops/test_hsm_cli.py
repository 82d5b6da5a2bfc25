"""`chainworker hsm` against a real SoftHSM2 token: keys and seeds made or moved inside it,
a taken label or a short seed refused in one line, the seed never echoed."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import uuid

from solders.pubkey import Pubkey

from chainworker.chain import keys
from chainworker.chain.signer import Pkcs11Signer
from chainworker.chain.token_seed import TokenSeed
from tests.plugins.softhsm import SoftHsm


def hsm(softhsm: SoftHsm, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **softhsm.env("unused"), "LOG_FORMAT": "json"}
    return subprocess.run([sys.executable, "-m", "chainworker", "hsm", *args], env=env,
                          input=stdin, capture_output=True, text=True, timeout=60)


def test_create_key_prints_the_tokens_public_key_and_refuses_a_taken_label(
    softhsm: SoftHsm,
) -> None:
    label = f"cli-key-{uuid.uuid4().hex[:6]}"
    made = hsm(softhsm, "create-key", "--label", label)
    assert made.returncode == 0, made.stderr
    signer = Pkcs11Signer(softhsm.module, softhsm.token_label, label, softhsm.pin)
    try:
        assert Pubkey.from_string(made.stdout.strip()) == signer.pubkey()
    finally:
        signer.close()
    again = hsm(softhsm, "create-key", "--label", label)
    assert again.returncode == 2
    assert again.stderr.strip().count("\n") == 0 and "already has an object" in again.stderr


def test_an_imported_seed_keeps_every_address(softhsm: SoftHsm) -> None:
    label, text = f"cli-seed-{uuid.uuid4().hex[:6]}", secrets.token_urlsafe(48)
    moved = hsm(softhsm, "import-seed", "--label", label, stdin=text + "\n")
    assert moved.returncode == 0, moved.stderr
    assert text not in moved.stdout + moved.stderr
    seed = TokenSeed(softhsm.module, softhsm.token_label, label, softhsm.pin)
    try:
        tenant, user = uuid.uuid4(), uuid.uuid4()
        assert keys.custodial_wallet(seed, tenant, user) == keys.custodial_wallet(
            text.encode(), tenant, user)
    finally:
        seed.close()


def test_a_created_seed_derives_and_a_short_one_is_refused(softhsm: SoftHsm) -> None:
    label = f"cli-new-{uuid.uuid4().hex[:6]}"
    assert hsm(softhsm, "create-seed", "--label", label).returncode == 0
    seed = TokenSeed(softhsm.module, softhsm.token_label, label, softhsm.pin)
    try:
        tenant, ticket = uuid.uuid4(), uuid.uuid4()
        first = keys.mint_keypair(seed, tenant, ticket)
        assert first == keys.mint_keypair(seed, tenant, ticket)  # deterministic
        assert first != keys.mint_keypair(seed, tenant, uuid.uuid4())
    finally:
        seed.close()
    short = hsm(softhsm, "import-seed", "--label", "cli-short", stdin="x" * 31)
    assert short.returncode == 2 and "at least 32 bytes" in short.stderr
    assert "x" * 31 not in short.stderr
