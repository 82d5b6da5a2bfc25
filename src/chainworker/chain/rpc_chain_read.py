"""SolanaRpc's reads of where the chain is: heights, signature statuses, transactions.

`read_chain` is the view the confirmation round and reconcile decide by: one endpoint's
height, checked by `lifecycle.heights`, and then that endpoint's statuses. Everything here
goes through `rpc_failover.FailoverRpc`'s endpoints and retries, and keeps the heights and
slots seen in its state.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from typing import Any

from solders.signature import Signature

from chainworker.chain import calls, views
from chainworker.chain.calls import Call
from chainworker.chain.endpoints import Endpoint
from chainworker.chain.errors import BAD_RESPONSE, CONFIG, RPC, TIMEOUT, ChainError
from chainworker.chain.rpc_failover import FailoverRpc
from chainworker.chain.views import ChainRead, SignatureStatusView, TransactionView
from chainworker.lifecycle import heights
from chainworker.lifecycle.model import Commitment


class ChainReads(FailoverRpc):
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


def _statuses(count: int) -> Callable[[Any], views.StatusPage]:
    return lambda result: views.signature_statuses(result, count)
