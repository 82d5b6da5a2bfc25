"""SolanaRpc: the one RPC client of chainworker, over one or more endpoints.

- Reads go to the first healthy endpoint; an endpoint that fails is skipped for a short
  cooldown, and the call moves on to the next one.
- Transport errors, timeouts, HTTP 429/5xx and "node unhealthy" answers are retried with
  jittered exponential backoff, up to `max_attempts` requests per call.
- `send_raw` fans the same bytes out to every endpoint at once (no preflight, maxRetries 0:
  chainworker rebroadcasts itself) and succeeds as soon as one accepts.
- One blockhash cache per instance; create one SolanaRpc per process and share it.

Every failure is a ChainError. Requests are solders' typed requests (see `calls`), answers
plain dataclasses (see `views`).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Final, TypeVar

import httpx
from solders.hash import Hash
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.transaction import VersionedTransaction

from chainworker.chain import calls, token2022, views
from chainworker.chain.calls import INVALID_PARAMS, Call
from chainworker.chain.endpoints import Endpoint, Observer
from chainworker.chain.errors import (
    BAD_RESPONSE,
    CONFIG,
    RPC,
    SIMULATION,
    TIMEOUT,
    UNEXPECTED_ACCOUNT,
    ChainError,
)
from chainworker.chain.token2022 import TOKEN_2022_PROGRAM_ID
from chainworker.chain.views import (
    ChainRead,
    MintState,
    SignatureStatusView,
    SimulationView,
    TransactionView,
)
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
MAX_STATUS_BATCH: Final = 256
# sendTransaction calls per JSON-RPC batch (providers commonly accept 100 or more).
SEND_BATCH_MAX: Final = 100
_DECODE_ERRORS: Final = (ValueError, TypeError, KeyError, IndexError, AttributeError)


class SolanaRpc:
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
        self._blockhash: tuple[Hash, int] | None = None
        self._blockhash_at = 0.0
        self._blockhash_lock = asyncio.Lock()
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
    ) -> SolanaRpc:
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

    async def __aenter__(self) -> SolanaRpc:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        await asyncio.gather(*(endpoint.close() for endpoint in self._endpoints))

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
        except _DECODE_ERRORS as error:
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
                value = _decoded(decode, result, call.method, current.label)
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

    # --- sending -----------------------------------------------------------

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

    def _keep(self, task: asyncio.Task[Any]) -> None:
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        task.add_done_callback(lambda t: t.cancelled() or t.exception())

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

    # --- cluster state -------------------------------------------------------

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

    async def block_height(self, commitment: Commitment | None = None) -> int:
        """The block height at `commitment`, checked as `read_chain` checks it (but for the
        endpoint's cluster: a height alone decides nothing)."""
        return (await self.read_chain([], commitment, check_cluster=False)).height

    async def signature_statuses(
        self, signatures: Sequence[Signature | str]
    ) -> list[SignatureStatusView | None]:
        """Statuses in input order, None for unknown signatures; batches of up to 256."""

        async def one(call: Call, count: int) -> list[SignatureStatusView | None]:
            page = await self._call(call, _statuses(count))
            return page.statuses

        results = await asyncio.gather(*(one(*batch) for batch in self._status_calls(signatures)))
        return [status for batch_result in results for status in batch_result]

    def _status_calls(self, signatures: Sequence[Signature | str]) -> list[tuple[Call, int]]:
        """getSignatureStatuses calls of at most `status_batch_size`, and their sizes."""
        size = self._batch
        batches = [signatures[i : i + size] for i in range(0, len(signatures), size)]
        return [(calls.signature_statuses(batch), len(batch)) for batch in batches]

    async def read_chain(
        self,
        signatures: Sequence[Signature | str],
        commitment: Commitment | None = None,
        *,
        check_cluster: bool = True,
    ) -> ChainRead:
        """The block height and then the signatures' statuses, all from one endpoint.

        What decides an attempt's fate must be one node's consistent view: a height from a
        node ahead and statuses from a node behind would make a landed attempt look
        expired. The height is read first (a signature unknown after a height past its
        blockhash can no longer land) and checked (`lifecycle.heights`); when any part fails
        on an endpoint, the whole read moves to the next one.
        """
        batches = self._status_calls(signatures)
        level = commitment or self.commitment
        last: ChainError | None = None
        current: Endpoint | None = None
        for attempt in range(self._max_attempts):
            previous = current
            current = self._pick(avoid=previous)
            if last is not None and (current is previous or not current.is_up(time.monotonic())):
                await asyncio.sleep(self._backoff(attempt - 1))
            try:
                if check_cluster:  # statuses of another cluster would all say "unknown"
                    await self._check_cluster(current)
                height = await self._checked_height(current, level)
                pages = await asyncio.gather(*(
                    self._with_retries(call, _statuses(count), endpoint=current, attempts=1)
                    for call, count in batches
                ))
                for page in pages:
                    self._check_slot(current, height, page.context_slot)
            except ChainError as error:
                last = error
                if error.retryable or error.kind == BAD_RESPONSE:
                    current.mark_down(self._cooldown)
                    continue
                if error.kind == CONFIG and len(self._endpoints) > 1:
                    continue  # out for good; the others serve
                raise
            statuses = [status for page in pages for status in page.statuses]
            return ChainRead(current.label, height, statuses)
        assert last is not None
        raise last

    def _check_slot(self, endpoint: Endpoint, height: int, slot: int) -> None:
        """The slot an endpoint answered statuses at: never below the height it reported
        just before, never back on that endpoint, never implausibly far ahead."""
        now = time.monotonic()
        problem = heights.beyond_slot(height, slot) or heights.height_problem(
            slot, before_on_endpoint=endpoint.slot_seen, highest=self._highest_slot, now=now,
            what="slot",
        )
        if problem is not None:
            raise ChainError(BAD_RESPONSE, problem, endpoint=endpoint.label)
        endpoint.slot_seen = heights.later(endpoint.slot_seen, slot, now)
        self._highest_slot = heights.later(self._highest_slot, slot, now)

    async def _checked_height(self, endpoint: Endpoint, commitment: Commitment) -> int:
        """getBlockHeight on `endpoint`, refused (bad_response) unless `lifecycle.heights`
        finds it believable; an accepted height becomes what later ones are checked against."""
        reported = await self._with_retries(
            calls.block_height(commitment), views.block_height, endpoint=endpoint, attempts=1
        )
        now = time.monotonic()
        problem = heights.height_problem(
            reported, before_on_endpoint=endpoint.height_seen, highest=self._highest, now=now
        )
        if problem is not None:
            raise ChainError(BAD_RESPONSE, problem, endpoint=endpoint.label)
        assert isinstance(reported, int)
        endpoint.height_seen = heights.later(endpoint.height_seen, reported, now)
        self._highest = heights.later(self._highest, reported, now)
        return reported

    async def get_transaction(self, signature: Signature | str) -> TransactionView | None:
        commitment = max(self.commitment, Commitment.CONFIRMED)  # getTransaction needs confirmed
        return await self._call(calls.transaction(signature, commitment), views.transaction)

    async def get_transaction_error(self, signature: Signature | str) -> views.TxErrorView | None:
        found = await self.get_transaction(signature)
        return found.err if found else None

    async def get_transaction_logs(self, signature: Signature | str) -> list[str]:
        found = await self.get_transaction(signature)
        return list(found.logs) if found else []

    # --- accounts ------------------------------------------------------------

    async def get_account(self, address: Pubkey) -> views.AccountView | None:
        return await self._call(calls.account_info(address, self.commitment), views.account)

    async def get_mint_state(self, mint: Pubkey) -> MintState | None:
        """The mint's supply, authorities and metadata; None if no account exists there.

        An account there that is not a Token-2022 mint: ChainError(kind="unexpected_account").
        """
        account = await self.get_account(mint)
        if account is None:
            return None
        if account.owner != TOKEN_2022_PROGRAM_ID:
            raise ChainError(UNEXPECTED_ACCOUNT, f"{mint} is owned by {account.owner}")
        try:
            return views.mint_state(mint, account)
        except ValueError as error:
            raise ChainError(UNEXPECTED_ACCOUNT, f"{mint} is not a mint: {error}") from None

    async def get_token_holder(self, mint: Pubkey) -> tuple[Pubkey, int] | None:
        """(owner wallet, amount) of the account holding the mint's token; None if none does
        (or no mint exists there)."""
        try:
            largest = await self._call(
                calls.token_largest_accounts(mint, self.commitment), views.largest_token_accounts
            )
        except ChainError as error:
            if error.kind == RPC and error.code == INVALID_PARAMS:
                return None  # "Invalid param: not a Token mint": nothing holds it
            raise
        for address, amount in largest:
            if amount <= 0:
                continue
            account = await self.get_account(address)
            if account is None:
                continue
            try:
                parsed = token2022.parse_token_account(account.data)
            except ValueError as error:
                raise ChainError(BAD_RESPONSE, f"token account {address}: {error}") from None
            return parsed.owner, parsed.amount
        return None

    async def get_balance(self, address: Pubkey) -> int:
        return await self._call(calls.balance(address, self.commitment), views.balance)

    async def request_airdrop(
        self, address: Pubkey, lamports: int, *, wait_seconds: float = 30.0
    ) -> Signature:
        """Airdrop (localnet, devnet) and wait until it is confirmed."""
        signature = await self._call(
            calls.airdrop(address, lamports, self.commitment), views.airdropped
        )
        await self.wait_for_confirmation(signature, wait_seconds)
        return signature

    async def wait_for_confirmation(
        self, signature: Signature, timeout_seconds: float, poll_seconds: float = 0.2
    ) -> SignatureStatusView:
        deadline = time.monotonic() + timeout_seconds
        wanted = self.commitment if self.commitment > Commitment.PROCESSED else None
        while True:
            (status,) = await self.signature_statuses([signature])
            if status is not None:
                if status.err is not None:
                    raise ChainError(RPC, f"{signature} failed: {status.err.code}")
                if wanted is None or (
                    status.confirmation_status is not None
                    and Commitment(status.confirmation_status) >= Commitment.CONFIRMED
                ):
                    return status
            if time.monotonic() >= deadline:
                raise ChainError(TIMEOUT, f"{signature} not confirmed in {timeout_seconds}s")
            await asyncio.sleep(poll_seconds)


def _decoded(decode: Callable[[Any], T], result: Any, method: str, label: str) -> T:
    """`decode(result)`, an ill-shaped result being ChainError(bad_response)."""
    try:
        return decode(result)
    except _DECODE_ERRORS as error:
        raise ChainError(
            BAD_RESPONSE, f"ill-shaped {method} answer: {error}", endpoint=label
        ) from None


def _accepted(answer: Any | ChainError, label: str) -> Signature | ChainError:
    """One sendTransaction answer of a batch: the signature it names, or why it is no
    acceptance (an answer that names no signature accepted nothing)."""
    if isinstance(answer, ChainError):
        return answer
    try:
        return _decoded(views.sent, answer, "sendTransaction", label)
    except ChainError as error:
        return error


def _statuses(count: int) -> Callable[[Any], views.StatusPage]:
    return lambda result: views.signature_statuses(result, count)
