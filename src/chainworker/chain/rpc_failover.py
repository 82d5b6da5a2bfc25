"""The base of SolanaRpc: its endpoints, their health and cluster, and the retrying call.

- Reads go to the first healthy endpoint; an endpoint that fails is skipped for a short
  cooldown, and the call moves on to the next one.
- Transport errors, timeouts, HTTP 429/5xx and "node unhealthy" answers are retried with
  jittered exponential backoff, up to `max_attempts` requests per call.
- An endpoint serving another cluster (by its genesis hash) is refused for good.

All of the client's state is set here, in the one `__init__`: the parts of SolanaRpc
(`rpc_chain_read`, `rpc_sends`, `rpc_accounts`) add methods and no state. Touches the
network only through `endpoints.Endpoint`; decoding is `views`' and requests `calls`'.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Final, Self, TypeVar

import httpx
from solders.hash import Hash

from chainworker.chain import calls, views
from chainworker.chain.calls import Call
from chainworker.chain.endpoints import Endpoint, Observer
from chainworker.chain.errors import BAD_RESPONSE, CONFIG, ChainError
from chainworker.lifecycle import heights
from chainworker.lifecycle.model import Commitment

if TYPE_CHECKING:
    from chainworker.config import Settings

T = TypeVar("T")

# Genesis hashes of the public clusters: an endpoint of another cluster is never used.
GENESIS_HASHES: Final = {
    "mainnet": "5eykt4UsFv8P8NJdTREpY1vzqKqZKvdpKuc147dw2N9d",
    "devnet": "EtWTRABZaYq6iMfeYKouRu166VU2xqa1wcaWoxPkrZBG",
    "testnet": "4uhcVJyU9pJkvQyS88uRDiswHXSCkY3zQawwpjk2NsNY",
}
# getSignatureStatuses takes at most this many signatures a call.
MAX_STATUS_BATCH: Final = 256
DECODE_ERRORS: Final = (ValueError, TypeError, KeyError, IndexError, AttributeError)


class FailoverRpc:
    def __init__(
        self,
        urls: Sequence[str],
        *,
        commitment: Commitment = Commitment.CONFIRMED,
        timeout_seconds: float = 5.0,
        max_attempts: int = 4,
        blockhash_cache_seconds: float = 2.0,
        status_batch_size: int = MAX_STATUS_BATCH,
        cooldown_seconds: float = 5.0,
        backoff_base_seconds: float = 0.1,
        backoff_max_seconds: float = 2.0,
        observer: Observer | None = None,
        cluster: str | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        """`transport` stands in for the network of every endpoint (httpx.MockTransport in
        tests); it is closed with the client."""
        if not urls:
            raise ChainError(CONFIG, "at least one RPC URL is required")
        # Every endpoint must serve one cluster: the configured one's genesis when it is a
        # public cluster, else whichever the first endpoint checked serves.
        self._genesis: str | None = GENESIS_HASHES.get(cluster or "")
        self._cluster = cluster
        self._endpoints = [
            Endpoint(i, url, timeout_seconds, transport=transport) for i, url in enumerate(urls)
        ]
        self.commitment = commitment
        self._max_attempts = max(1, max_attempts)
        self._blockhash_ttl = blockhash_cache_seconds
        self._batch = max(1, min(MAX_STATUS_BATCH, status_batch_size))
        self._cooldown = cooldown_seconds
        self._backoff_base = backoff_base_seconds
        self._backoff_max = backoff_max_seconds
        self._observer = observer
        # The blockhash cache of `rpc_sends.Sends.latest_blockhash`.
        self._blockhash: tuple[Hash, int] | None = None
        self._blockhash_at = 0.0
        self._blockhash_lock = asyncio.Lock()
        # Sends still delivering to slower endpoints after one accepted (`_keep`).
        self._background: set[asyncio.Task[Any]] = set()
        # The highest block height and slot accepted from any endpoint (lifecycle.heights).
        self._highest: heights.Seen | None = None
        self._highest_slot: heights.Seen | None = None

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        observer: Observer | None = None,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> Self:
        return cls(
            settings.solana_rpc_urls,
            commitment=settings.commitment,
            timeout_seconds=settings.rpc_timeout_seconds,
            max_attempts=settings.rpc_max_attempts,
            blockhash_cache_seconds=settings.blockhash_cache_seconds,
            status_batch_size=settings.status_batch_size,
            observer=observer,
            cluster=settings.solana_cluster,
            transport=transport,
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        await asyncio.gather(*(endpoint.close() for endpoint in self._endpoints))

    def _keep(self, task: asyncio.Task[Any]) -> None:
        """Let `task` run on in the background; `close` cancels it."""
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        task.add_done_callback(lambda t: t.cancelled() or t.exception())

    # --- health and retries ----------------------------------------------

    @property
    def endpoint_labels(self) -> list[str]:
        return [endpoint.label for endpoint in self._endpoints]

    def endpoint_health(self) -> dict[str, bool]:
        """Label -> not in cooldown; for the `chainworker_rpc_endpoint_up` gauge."""
        now = time.monotonic()
        return {endpoint.label: endpoint.is_up(now) for endpoint in self._endpoints}

    def _pick(self, avoid: Endpoint | None = None) -> Endpoint:
        """The first endpoint not in cooldown (preferring one other than `avoid`);
        if all are cooling down, the one that recovers first."""
        now = time.monotonic()
        healthy = [e for e in self._endpoints if e.is_up(now)]
        others = [e for e in healthy if e is not avoid]
        if others:
            return others[0]
        if healthy:
            return healthy[0]
        return min(self._endpoints, key=lambda e: e.down_until)

    async def _check_cluster(self, endpoint: Endpoint) -> None:
        """Refuse (for good) an endpoint whose genesis hash is not the cluster's: its
        heights and statuses would be another chain's, and everything would look expired."""
        if endpoint.cluster_checked:
            return
        answer = await endpoint.request(calls.genesis_hash(), self._observer)
        try:
            genesis = views.genesis_hash(answer)
        except DECODE_ERRORS as error:
            raise ChainError(
                BAD_RESPONSE, f"getGenesisHash is not a hash: {error}", endpoint=endpoint.label
            ) from None
        if self._genesis is None:
            self._genesis = genesis
        elif genesis != self._genesis:
            endpoint.mark_down(float("inf"))
            cluster = f"the {self._cluster} cluster" if self._cluster else "the other endpoints"
            raise ChainError(
                CONFIG,
                f"serves another cluster than {cluster} (genesis {genesis[:12]}..., expected "
                f"{self._genesis[:12]}...): remove it from SOLANA_RPC_URLS",
                endpoint=endpoint.label,
            )
        endpoint.cluster_checked = True

    async def verify_endpoints(self) -> list[ChainError]:
        """Check every endpoint's cluster now (at start); the errors of those that could not
        be checked. A wrong cluster raises: a configuration to refuse, not to ride out."""
        problems: list[ChainError] = []
        for endpoint in self._endpoints:
            try:
                await self._check_cluster(endpoint)
            except ChainError as error:
                if error.kind == CONFIG:
                    raise
                problems.append(error)  # unreachable now: checked before its first use
        return problems

    def _backoff(self, attempt: int) -> float:
        ceiling = min(self._backoff_max, self._backoff_base * 2**attempt)
        return ceiling / 2 + random.uniform(0, ceiling / 2)

    async def _with_retries(
        self,
        call: Call,
        decode: Callable[[Any], T],
        endpoint: Endpoint | None = None,
        attempts: int | None = None,
    ) -> T:
        """Make `call` and decode its result, failing over and retrying as the error allows.

        With `endpoint` given, stay on it (fan-out sends); otherwise pick healthy endpoints.
        `attempts` caps the tries (default: the client's max_attempts).
        """
        last: ChainError | None = None
        current: Endpoint | None = None
        for attempt in range(attempts or self._max_attempts):
            previous = current
            current = endpoint or self._pick(avoid=previous)
            if last is not None and (current is previous or not current.is_up(time.monotonic())):
                await asyncio.sleep(self._backoff(attempt - 1))
            try:
                result = await current.request(call, self._observer)
                value = decoded(decode, result, call.method, current.label)
            except ChainError as error:
                last = error
                if error.retryable:
                    current.mark_down(self._cooldown)
                    continue
                if error.kind == BAD_RESPONSE and endpoint is None and len(self._endpoints) > 1:
                    current.mark_down(self._cooldown)
                    continue
                raise
            current.mark_up()
            return value
        assert last is not None
        raise last

    async def _call(self, call: Call, decode: Callable[[Any], T]) -> T:
        return await self._with_retries(call, decode)


def decoded(decode: Callable[[Any], T], result: Any, method: str, label: str) -> T:
    """`decode(result)`, an ill-shaped result being ChainError(bad_response)."""
    try:
        return decode(result)
    except DECODE_ERRORS as error:
        raise ChainError(
            BAD_RESPONSE, f"ill-shaped {method} answer: {error}", endpoint=label
        ) from None
