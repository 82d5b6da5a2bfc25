"""Signing throughput: the local signer (a keypair) against the PKCS#11 signer (a key in a
SoftHSM2 token), over messages the size of a mint transaction's.

Run: python bench/signing.py [--messages 5000] [--rounds 5]

Needs Debian's softhsm2 (its module and softhsm2-util); the token is made in a temporary
directory and removed. Prints signatures per second for each signer, one at a time
(`sign_message`) and in batches (`sign_messages`, one session), as the median of the
rounds, and the ratio PKCS#11 / local.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from solders.keypair import Keypair

from chainworker.chain.signer import Pkcs11Signer, create_ed25519_key, sign_messages

MODULES = ("/usr/lib/softhsm/libsofthsm2.so", "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so")
MESSAGE_BYTES = 900  # a mint's message: the transaction's 1,232 bytes less its signatures


def rate(count: int, work: Callable[[], object], rounds: int) -> float:
    """Signatures per second, the median of `rounds`."""
    figures = []
    for _ in range(rounds):
        started = time.perf_counter()
        work()
        figures.append(count / (time.perf_counter() - started))
    return statistics.median(figures)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    module = next((m for m in MODULES if Path(m).is_file()), None)
    if module is None or shutil.which("softhsm2-util") is None:
        print("softhsm2 is not installed (apt-get install softhsm2)", file=sys.stderr)
        return 2
    messages = [secrets.token_bytes(MESSAGE_BYTES) for _ in range(args.messages)]
    with tempfile.TemporaryDirectory() as scratch:
        conf = Path(scratch) / "softhsm2.conf"
        (Path(scratch) / "tokens").mkdir()
        conf.write_text(f"directories.tokendir = {scratch}/tokens\nobjectstore.backend = file\n")
        os.environ["SOFTHSM2_CONF"] = str(conf)
        pin = secrets.token_hex(8)
        subprocess.run(["softhsm2-util", "--init-token", "--free", "--label", "bench",
                        "--pin", pin, "--so-pin", secrets.token_hex(8)],
                       check=True, capture_output=True)
        create_ed25519_key(module, "bench", pin, "authority")
        hsm = Pkcs11Signer(module, "bench", "authority", pin)
        local = Keypair()
        figures = {
            "local, one at a time": rate(
                len(messages), lambda: [local.sign_message(m) for m in messages], args.rounds
            ),
            "local, batch": rate(len(messages), lambda: sign_messages(local, messages),
                                 args.rounds),
            "PKCS#11 (SoftHSM2), one at a time": rate(
                len(messages), lambda: [hsm.sign_message(m) for m in messages], args.rounds
            ),
            "PKCS#11 (SoftHSM2), batch": rate(
                len(messages), lambda: sign_messages(hsm, messages), args.rounds
            ),
        }
        hsm.close()
    print(f"{args.messages} messages of {MESSAGE_BYTES} bytes, median of {args.rounds} rounds")
    for name, value in figures.items():
        print(f"  {name:<36} {value:>10,.0f} signatures/s")
    ratio = figures["PKCS#11 (SoftHSM2), batch"] / figures["local, batch"]
    print(f"  PKCS#11 / local (batch)              {ratio:>10.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
