"""A SoftHSM2 token of the bench's own, in a temporary directory, with one Ed25519 key:
for the benches that compare the local signer with the PKCS#11 one."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from chainworker.chain.signer import create_ed25519_key

MODULES = ("/usr/lib/softhsm/libsofthsm2.so", "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so")
TOKEN_LABEL = "bench"
KEY_LABEL = "authority"


@dataclass(frozen=True)
class Token:
    module: str
    pin: str
    token_label: str = TOKEN_LABEL
    key_label: str = KEY_LABEL

    def settings(self) -> dict[str, str]:
        """The settings that make the token's key the platform authority."""
        return {"pkcs11_module": self.module, "pkcs11_token_label": self.token_label,
                "pkcs11_pin": self.pin, "authority_pkcs11_key_label": self.key_label}


def module() -> str | None:
    """SoftHSM2's PKCS#11 module, when softhsm2 is installed."""
    found = next((m for m in MODULES if Path(m).is_file()), None)
    return found if found is not None and shutil.which("softhsm2-util") else None


@contextlib.contextmanager
def softhsm_token() -> Iterator[Token]:
    """A fresh token with an Ed25519 key labelled KEY_LABEL; removed afterwards."""
    library = module()
    if library is None:
        raise SystemExit("softhsm2 is not installed (apt-get install softhsm2)")
    with tempfile.TemporaryDirectory() as scratch:
        conf = Path(scratch) / "softhsm2.conf"
        (Path(scratch) / "tokens").mkdir()
        conf.write_text(f"directories.tokendir = {scratch}/tokens\nobjectstore.backend = file\n")
        os.environ["SOFTHSM2_CONF"] = str(conf)  # read when the module is loaded
        pin = secrets.token_hex(8)
        subprocess.run(["softhsm2-util", "--init-token", "--free", "--label", TOKEN_LABEL,
                        "--pin", pin, "--so-pin", secrets.token_hex(8)],
                       check=True, capture_output=True)
        create_ed25519_key(library, TOKEN_LABEL, pin, KEY_LABEL)
        yield Token(library, pin)
