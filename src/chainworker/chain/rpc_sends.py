"""SolanaRpc's part for sending: the blockhash, simulation, priority fees, and the sends.

- `latest_blockhash` is cached per client for `blockhash_cache_seconds`.
- `send_raw` and `send_raw_many` fan the same bytes out to every endpoint at once (no
  preflight, maxRetries 0: chainworker rebroadcasts itself) and succeed as soon as one
  accepts.

Everything here goes through `rpc_failover.FailoverRpc`'s endpoints and retries.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any, Final

from solders.hash import Hash
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.transaction import VersionedTransaction

from chainworker.chain import calls, views
from chainworker.chain.calls import Call
from chainworker.chain.endpoints import Endpoint
from chainworker.chain.errors import SIMULATION, ChainError
from chainworker.chain.rpc_failover import FailoverRpc, decoded
from chainworker.chain.views import SimulationView

# sendTransaction calls per JSON-RPC batch (providers commonly accept 100 or more).
SEND_BATCH_MAX: Final = 100


class Sends(FailoverRpc):
    async def latest_blockhash(self, *, valid_beyond: int = 0) -> tuple[Hash, int]:
        """(blockhash, last valid block height), cached for `blockhash_cache_seconds`.

        A cached blockhash whose last valid height is not above `valid_beyond` (a block
        height the caller has already seen) is refreshed: the chain moved past it.
        """
        cached = self._fresh_blockhash()
        if cached is not None and cached[1] > valid_beyond:
            return cached
        async with self._blockhash_lock:
            cached = self._fresh_blockhash()
            if cached is not None and cached[1] > valid_beyond:
                return cached
            value = await self._call(calls.latest_blockhash(self.commitment), views.blockhash)
            self._blockhash, self._blockhash_at = value, time.monotonic()
            return value

    def _fresh_blockhash(self) -> tuple[Hash, int] | None:
        if self._blockhash is not None and (
            time.monotonic() - self._blockhash_at < self._blockhash_ttl
        ):
            return self._blockhash
        return None

    async def simulate(self, tx: VersionedTransaction) -> SimulationView:
        """Simulate with the latest blockhash and no signature check."""
        return await self._call(calls.simulate(tx, self.commitment), views.simulation)

    async def simulate_units(self, tx: VersionedTransaction) -> int:
        """Compute units the transaction consumes; ChainError(kind="simulation") if it fails."""
        result = await self.simulate(tx)
        if result.err is not None:
            tail = " | ".join(result.logs[-3:])
            raise ChainError(SIMULATION, f"{result.err.code} {tail}".strip())
        return result.units_consumed

    async def recent_prioritization_fees(self, accounts: Sequence[Pubkey] = ()) -> list[int]:
        return await self._call(calls.prioritization_fees(accounts), views.prioritization_fees)

    async def send_raw_many(self, txs: Sequence[bytes]) -> list[ChainError | None]:
        """Send many signed transactions to every endpoint at once, in JSON-RPC batches.

        Per transaction, None when at least one endpoint accepted it, else the most
        telling error (a node's answer says more than a dead socket).
        """
        if not txs:
            return []
        sends = [calls.send(tx, self.commitment) for tx in txs]
        chunks = [sends[i : i + SEND_BATCH_MAX] for i in range(0, len(sends), SEND_BATCH_MAX)]

        async def on(endpoint: Endpoint) -> list[Any | ChainError]:
            answers: list[Any | ChainError] = []
            for chunk in chunks:
                try:
                    results = await self._batch_with_retries(endpoint, "sendTransaction", chunk)
                except ChainError as error:
                    answers += [error] * len(chunk)
                    continue
                answers += [_accepted(result, endpoint.label) for result in results]
            return answers

        per_endpoint = await asyncio.gather(*(on(endpoint) for endpoint in self._endpoints))
        outcomes: list[ChainError | None] = []
        for answers in zip(*per_endpoint, strict=True):
            errors = [a for a in answers if isinstance(a, ChainError)]
            if len(errors) < len(answers):
                outcomes.append(None)
            else:
                outcomes.append(sorted(errors, key=lambda e: e.retryable)[0])
        return outcomes

    async def _batch_with_retries(
        self, endpoint: Endpoint, method: str, batch: list[Call]
    ) -> list[Any | ChainError]:
        last: ChainError | None = None
        for attempt in range(self._max_attempts):
            if last is not None:
                await asyncio.sleep(self._backoff(attempt - 1))
            try:
                answers = await endpoint.request_batch(method, batch, self._observer)
            except ChainError as error:
                last = error
                if error.retryable:
                    endpoint.mark_down(self._cooldown)
                    continue
                raise
            endpoint.mark_up()
            return answers
        assert last is not None
        raise last

    async def send_raw(self, tx_bytes: bytes) -> Signature:
        """Send signed bytes to every endpoint at once; the signature once any accepts."""
        call = calls.send(tx_bytes, self.commitment)
        tasks = [
            asyncio.create_task(self._with_retries(call, views.sent, endpoint=endpoint))
            for endpoint in self._endpoints
        ]
        errors: list[ChainError] = []
        pending: set[asyncio.Task[Signature]] = set(tasks)
        try:
            while pending:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    error = task.exception()
                    if error is None:
                        # The rest keep delivering in the background; nobody waits for them.
                        for straggler in pending:
                            self._keep(straggler)
                        pending = set()
                        return task.result()
                    if isinstance(error, ChainError):
                        errors.append(error)
                    else:
                        raise error
        finally:
            for task in pending:
                task.cancel()
        # An answer from a node (e.g. a malformed transaction) says more than a dead socket.
        errors.sort(key=lambda e: e.retryable)
        raise errors[0]


def _accepted(answer: Any | ChainError, label: str) -> Signature | ChainError:
    """One sendTransaction answer of a batch: the signature it names, or why it is no
    acceptance (an answer that names no signature accepted nothing)."""
    if isinstance(answer, ChainError):
        return answer
    try:
        return decoded(views.sent, answer, "sendTransaction", label)
    except ChainError as error:
        return error
