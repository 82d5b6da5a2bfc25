"""A real SoftHSM2 token for the signer tests, initialised by the fixture itself.

Debian's `softhsm2` is installed when missing (tests/plugins/debian.py); where it cannot
be, the tests that need it skip, saying why. The token lives in the test's own directory
(SOFTHSM2_CONF), so nothing on the machine is touched."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from solders.pubkey import Pubkey

from chainworker.chain.signer import create_ed25519_key
from tests.plugins import debian

# The bench is a directory of scripts, not a package: its modules import each other by name.
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from softhsm_token import init_token, module

TOKEN_LABEL = "chainworker-test"
USER_PIN = "4711-test-pin"
SO_PIN = "0815-so-pin"


@dataclass(frozen=True)
class SoftHsm:
    module: str
    conf: Path
    token_label: str = TOKEN_LABEL
    pin: str = USER_PIN

    def env(self, key_label: str) -> dict[str, str]:
        """The settings that make `key_label` the authority, and the token's config."""
        return {
            "SOFTHSM2_CONF": str(self.conf), "PKCS11_MODULE": self.module,
            "PKCS11_TOKEN_LABEL": self.token_label, "PKCS11_PIN": self.pin,
            "AUTHORITY_PKCS11_KEY_LABEL": key_label,
        }

    def generate_ed25519(self, label: str) -> Pubkey:
        """An Ed25519 key pair made inside the token: sensitive, never extractable."""
        return create_ed25519_key(self.module, self.token_label, self.pin, label)


def _install() -> str | None:
    """Why softhsm2 could not be installed, or None once it is."""
    return debian.missing("softhsm2", lambda: module() is not None)


@pytest.fixture(scope="session")
def softhsm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SoftHsm]:
    why = _install()
    if why is not None:
        print(f"\nskipping the PKCS#11 tests: {why}")
        pytest.skip(why)
    library = module()
    assert library is not None
    previous = os.environ.get("SOFTHSM2_CONF")
    conf = init_token(tmp_path_factory.mktemp("softhsm"), TOKEN_LABEL, USER_PIN, SO_PIN)
    try:
        yield SoftHsm(module=library, conf=conf)
    finally:
        if previous is None:
            os.environ.pop("SOFTHSM2_CONF", None)
        else:
            os.environ["SOFTHSM2_CONF"] = previous
