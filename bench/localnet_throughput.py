"""Localnet throughput: sendTransaction over HTTP, status latency, slot timing under load.

Run: python bench/localnet_throughput.py [--transfers 6000] [--mints 1500] [--slot-ms 400]

Starts a localnet subprocess, pre-signs the transactions, then sends them over
HTTP/1.1 keep-alive connections with a minimal client (so the client's own CPU
does not hide the server's), one transaction per request and also in JSON-RPC
batches. "Executed" means every signature answers getSignatureStatuses.

The localnet runs with its block limits off (`--no-block-limits`): this measures raw
execution capacity, and 60M-unit blocks would hold only 300 of these transfers (each
requests the default 200,000 units), fewer than the localnet executes in a slot.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import statistics
import time
from typing import Any
from urllib.parse import urlparse

import httpx
from solders.hash import Hash
from solders.keypair import Keypair
from solders.message import Message
from solders.system_program import CreateAccountParams, TransferParams, create_account, transfer
from solders.transaction import VersionedTransaction
from spl.token.constants import TOKEN_2022_PROGRAM_ID
from spl.token.instructions import (
    create_idempotent_associated_token_account,
    get_associated_token_address,
    initialize_mint2,
    mint_to_checked,
)
from spl.token.models import InitializeMint2Params, MintToCheckedParams

from chainworker.localnet.process import start_localnet

SOL = 1_000_000_000
MINT_SIZE = 82
# Raw execution capacity: no block or writable-account unit limit (see the docstring).
UNLIMITED = ["--no-block-limits"]


class RawClient:
    """HTTP/1.1 keep-alive JSON-RPC client: one request in flight per connection."""

    def __init__(self, url: str) -> None:
        parsed = urlparse(url)
        self.host = parsed.hostname or "127.0.0.1"
        self.port = parsed.port or 80
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    async def call(self, body: bytes) -> bytes:
        assert self.reader is not None and self.writer is not None
        head = (
            f"POST / HTTP/1.1\r\nHost: {self.host}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        self.writer.write(head + body)
        headers = await self.reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in headers.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        return await self.reader.readexactly(length)

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            await self.writer.wait_closed()


# One client for every call: httpx.post makes a client, and so an SSL context, per call,
# which cost more CPU than the call itself; while the bench waits for the sent
# transactions to land, that was CPU taken from the localnet it measures.
_HTTP = httpx.Client(timeout=30)


def rpc(url: str, method: str, params: list[Any]) -> Any:
    body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}
    answer = _HTTP.post(url, json=body).json()
    if "error" in answer:
        raise RuntimeError(answer["error"])
    return answer["result"]


def send_body(raw: bytes, request_id: int) -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "id": request_id,
        "method": "sendTransaction",
        "params": [
            base64.b64encode(raw).decode(),
            {"encoding": "base64", "skipPreflight": True, "maxRetries": 0},
        ],
    }


def fund(url: str, count: int, lamports: int) -> list[Keypair]:
    keypairs = [Keypair() for _ in range(count)]
    signatures = [rpc(url, "requestAirdrop", [str(k.pubkey()), lamports]) for k in keypairs]
    wait_landed(url, signatures, 30)
    return keypairs


def wait_landed(url: str, signatures: list[str], timeout: float) -> float:
    """Seconds until every signature has a status (polled in batches of 256).

    A transaction that landed with an error is refused: a capacity figure is only
    meaningful for transactions that did their work (one that runs out of compute units
    fails early, and cheaply)."""
    started = time.perf_counter()
    remaining = list(signatures)
    failed = 0
    while remaining:
        if time.perf_counter() - started > timeout:
            raise RuntimeError(f"{len(remaining)} signatures did not land in {timeout}s")
        still: list[str] = []
        for offset in range(0, len(remaining), 256):
            chunk = remaining[offset : offset + 256]
            statuses = rpc(url, "getSignatureStatuses", [chunk])["value"]
            still.extend(sig for sig, status in zip(chunk, statuses, strict=True) if status is None)
            failed += sum(1 for status in statuses if status is not None and status["err"])
        remaining = still
        if remaining:
            time.sleep(0.05)
    if failed:
        raise RuntimeError(f"{failed} of {len(signatures)} transactions landed with an error")
    return time.perf_counter() - started


def transfers(url: str, count: int) -> list[VersionedTransaction]:
    payers = fund(url, 16, 1_000 * SOL)
    blockhash = Hash.from_string(
        rpc(url, "getLatestBlockhash", [{"commitment": "processed"}])["value"]["blockhash"]
    )
    destinations = [Keypair().pubkey() for _ in range(64)]
    signed = []
    for index in range(count):
        payer = payers[index % len(payers)]
        instruction = transfer(
            TransferParams(
                from_pubkey=payer.pubkey(),
                to_pubkey=destinations[index % len(destinations)],
                lamports=SOL // 100 + index,
            )
        )
        message = Message.new_with_blockhash([instruction], payer.pubkey(), blockhash)
        signed.append(VersionedTransaction(message, [payer]))
    return signed


def token_2022_mints(url: str, count: int) -> list[VersionedTransaction]:
    payers = fund(url, 16, 1_000 * SOL)
    rent = rpc(url, "getMinimumBalanceForRentExemption", [MINT_SIZE])
    blockhash = Hash.from_string(
        rpc(url, "getLatestBlockhash", [{"commitment": "processed"}])["value"]["blockhash"]
    )
    program = TOKEN_2022_PROGRAM_ID
    signed = []
    for index in range(count):
        payer = payers[index % len(payers)]
        mint = Keypair()
        owner = Keypair().pubkey()
        ata = get_associated_token_address(owner, mint.pubkey(), program)
        instructions = [
            create_account(
                CreateAccountParams(
                    from_pubkey=payer.pubkey(),
                    to_pubkey=mint.pubkey(),
                    lamports=rent,
                    space=MINT_SIZE,
                    owner=program,
                )
            ),
            initialize_mint2(
                InitializeMint2Params(
                    decimals=0,
                    program_id=program,
                    mint=mint.pubkey(),
                    mint_authority=payer.pubkey(),
                )
            ),
            create_idempotent_associated_token_account(
                payer.pubkey(), owner, mint.pubkey(), program
            ),
            mint_to_checked(
                MintToCheckedParams(
                    program_id=program,
                    mint=mint.pubkey(),
                    dest=ata,
                    mint_authority=payer.pubkey(),
                    amount=1,
                    decimals=0,
                )
            ),
        ]
        message = Message.new_with_blockhash(instructions, payer.pubkey(), blockhash)
        signed.append(VersionedTransaction(message, [payer, mint]))
    return signed


async def blast(
    url: str, signed: list[VersionedTransaction], connections: int, batch: int
) -> float:
    """Send everything; returns seconds until the last response."""
    bodies: list[bytes] = []
    for offset in range(0, len(signed), batch):
        chunk = signed[offset : offset + batch]
        payload: Any = [send_body(bytes(tx), offset + i) for i, tx in enumerate(chunk)]
        bodies.append(json.dumps(payload if batch > 1 else payload[0]).encode())
    clients = [RawClient(url) for _ in range(connections)]
    for client in clients:
        await client.open()
    queue = list(reversed(bodies))

    async def worker(client: RawClient) -> None:
        while queue:
            answer = await client.call(queue.pop())
            if b'"error"' in answer:
                raise RuntimeError(answer[:300])

    started = time.perf_counter()
    await asyncio.gather(*(worker(client) for client in clients))
    elapsed = time.perf_counter() - started
    for client in clients:
        await client.close()
    return elapsed


def stats(url: str) -> dict[str, Any]:
    result: dict[str, Any] = _HTTP.get(f"{url}/admin/stats", timeout=10).json()
    return result


async def paced(url: str, signed: list[VersionedTransaction], rate: int, connections: int) -> float:
    """Send at `rate` per second in 20 ms slices; returns seconds spent sending."""
    slice_size = max(rate // 50, 1)
    started = time.perf_counter()
    for index, offset in enumerate(range(0, len(signed), slice_size)):
        await blast(url, signed[offset : offset + slice_size], connections, 1)
        delay = started + (index + 1) * 0.02 - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
    return time.perf_counter() - started


def measure_send(
    url: str,
    name: str,
    signed: list[VersionedTransaction],
    batch: int,
    connections: int,
    rate: int | None = None,
) -> dict[str, Any]:
    before = stats(url)
    if rate is None:
        accepted_seconds = asyncio.run(blast(url, signed, connections, batch))
    else:
        accepted_seconds = asyncio.run(paced(url, signed, rate, connections))
    landed_seconds = wait_landed(url, [str(tx.signatures[0]) for tx in signed], 120)
    after = stats(url)
    slots = after["slot"] - before["slot"]
    intervals = after["slot_intervals_ms"][-slots:] if slots > 0 else [0.0]
    return {
        "case": name,
        "transactions": len(signed),
        "accepted_per_s": len(signed) / accepted_seconds,
        "executed_per_s": len(signed) / (accepted_seconds + landed_seconds),
        "drain_s": landed_seconds,
        "slot_interval_ms_mean": statistics.fmean(intervals),
        "slot_interval_ms_max": max(intervals),
    }


def status_latency(url: str, signatures: list[str], rounds: int = 50) -> dict[str, float]:
    chunk = signatures[:256]
    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "getSignatureStatuses",
        "params": [chunk, {"searchTransactionHistory": True}],
    }
    timings = []
    with httpx.Client(timeout=30) as http:
        for _ in range(rounds):
            started = time.perf_counter()
            http.post(url, json=body).raise_for_status()
            timings.append((time.perf_counter() - started) * 1000)
    timings.sort()
    return {
        "median_ms": statistics.median(timings),
        "p99_ms": timings[int(len(timings) * 0.99) - 1],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--transfers", type=int, default=6000)
    parser.add_argument("--mints", type=int, default=1500)
    parser.add_argument("--slot-ms", type=int, default=400)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--rate", type=int, default=1000, help="steady-load transfers per second")
    args = parser.parse_args()

    with start_localnet(slot_ms=args.slot_ms, seed=1, extra_args=UNLIMITED) as node:
        url = node.rpc_url
        results = []
        steady = transfers(url, args.rate * 5)
        results.append(
            measure_send(
                url,
                f"transfer, steady {args.rate}/s for 5 s",
                steady,
                1,
                args.connections,
                rate=args.rate,
            )
        )
        single = transfers(url, args.transfers)
        results.append(measure_send(url, "transfer, 1 per request", single, 1, args.connections))
        batched = transfers(url, args.transfers)
        results.append(measure_send(url, "transfer, batches of 50", batched, 50, 2))
        mints = token_2022_mints(url, args.mints)
        results.append(
            measure_send(url, "Token-2022 mint, 1 per request", mints, 1, args.connections)
        )
        latency = status_latency(url, [str(tx.signatures[0]) for tx in single])

    print(f"localnet throughput (slot {args.slot_ms} ms, block limits off: {' '.join(UNLIMITED)})")
    for row in results:
        print(
            f"  {row['case']:<34} {row['transactions']:>6} tx  "
            f"accepted {row['accepted_per_s']:>6.0f}/s  executed {row['executed_per_s']:>6.0f}/s  "
            f"all landed {row['drain_s']:.2f} s after the last send  "
            f"slot interval mean {row['slot_interval_ms_mean']:.0f} ms "
            f"max {row['slot_interval_ms_max']:.0f} ms"
        )
    print(
        f"  getSignatureStatuses x256: median {latency['median_ms']:.1f} ms, "
        f"p99 {latency['p99_ms']:.1f} ms"
    )


if __name__ == "__main__":
    main()
