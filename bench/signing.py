"""Signing throughput: the local signer (a keypair, as the pipeline signs with it: LocalKey,
through libsodium; and as a solders Keypair signs) against the PKCS#11 signer (a key in a
SoftHSM2 token), over messages the size of a mint transaction's.

Run: python bench/signing.py [--messages 5000] [--rounds 5]

Needs Debian's softhsm2 (its module and softhsm2-util); the token is made in a temporary
directory and removed. Prints signatures per second for each signer, one at a time
(`sign_message`) and in batches (`sign_messages`, one session), as the median of the
rounds, and the ratio PKCS#11 / local.
"""

from __future__ import annotations

import argparse
import secrets
import statistics
import sys
import time
from collections.abc import Callable

from solders.keypair import Keypair

from chainworker.chain.signer import LocalKey, Pkcs11Signer, sign_messages
from softhsm_token import softhsm_token

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
    messages = [secrets.token_bytes(MESSAGE_BYTES) for _ in range(args.messages)]
    with softhsm_token() as token:
        hsm = Pkcs11Signer(token.module, token.token_label, token.key_label, token.pin)
        keypair = Keypair()
        local = LocalKey.of(keypair)
        figures = {
            "solders Keypair, one at a time": rate(
                len(messages), lambda: [keypair.sign_message(m) for m in messages], args.rounds
            ),
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
