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

MODULES = (
    "/usr/lib/softhsm/libsofthsm2.so",
    "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/local/lib/softhsm/libsofthsm2.so",
)
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


def module_path() -> str | None:
    """SoftHSM2's PKCS#11 module, wherever the distribution put it."""
    return next((m for m in MODULES if Path(m).is_file()), None)


def module() -> str | None:
    """SoftHSM2's PKCS#11 module, when softhsm2 (with softhsm2-util) is installed."""
    found = module_path()
    return found if found is not None and shutil.which("softhsm2-util") else None


def init_token(directory: Path, label: str, pin: str, so_pin: str) -> Path:
    """A token labelled `label` kept in `directory`, made the process's SoftHSM2 store
    (SOFTHSM2_CONF, read when the module is loaded). Returns the config file."""
    (directory / "tokens").mkdir()
    conf = directory / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {directory / 'tokens'}\n"
                    "objectstore.backend = file\nlog.level = ERROR\n")
    os.environ["SOFTHSM2_CONF"] = str(conf)
    subprocess.run(["softhsm2-util", "--init-token", "--free", "--label", label,
                    "--pin", pin, "--so-pin", so_pin],
                   check=True, capture_output=True, timeout=60)
    return conf


@contextlib.contextmanager
def softhsm_token() -> Iterator[Token]:
    """A fresh token with an Ed25519 key labelled KEY_LABEL; removed afterwards."""
    library = module()
    if library is None:
        raise SystemExit("softhsm2 is not installed (apt-get install softhsm2)")
    with tempfile.TemporaryDirectory() as scratch:
        pin = secrets.token_hex(8)
        init_token(Path(scratch), TOKEN_LABEL, pin, secrets.token_hex(8))
        create_ed25519_key(library, TOKEN_LABEL, pin, KEY_LABEL)
        yield Token(library, pin)
