"""Arq's worker, starting the jobs of one poll with one Redis script.

Arq starts each job with four round trips (WATCH, EXISTS, ZSCORE, then MULTI/PSETEX/EXEC),
one job after another; at hundreds of jobs a second that is a large share of the worker's
time. Here the same check-and-claim is made for every job id of a poll atomically: a job
is taken when nobody holds its in-progress key and it is due in the queue. Everything
else (running, retrying, finishing a job) stays Arq's own.

It also rides out a Redis outage (a restart, a failover): Arq's poll lets a connection
error end the worker; here the poll is tried again after a backoff, and the worker goes on
once Redis answers. Nothing is lost meanwhile: recorded requests wait in PostgreSQL.

This module decides how many jobs to claim at once and what an outage does; how a claim,
a job slot and a poll work inside Arq is `jobs/arq_internals.py`'s (`WorkerSeams`), the
only code that touches Worker's private parts. It uses nothing else of Arq.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Final

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from chainworker.jobs.arq_internals import WorkerSeams
from chainworker.obs import logs

# Between polls while Redis does not answer: doubling from the first, up to the last.
OUTAGE_BACKOFF_SECONDS: Final = (0.2, 5.0)

log = logs.get_logger(__name__)


class BatchStartWorker(WorkerSeams):
    _outage = 0  # polls in a row that Redis did not answer

    async def around_poll(self, arq_poll: Callable[[], Awaitable[None]]) -> None:
        """Arq's poll; a Redis that does not answer now is polled again, not the end."""
        try:
            await arq_poll()
        except (RedisConnectionError, RedisTimeoutError, OSError) as error:
            self._outage += 1
            first, last = OUTAGE_BACKOFF_SECONDS
            if self._outage == 1:
                log.warning("Redis does not answer; polling again until it does",
                            error=str(error))
            await asyncio.sleep(min(last, first * 2 ** min(self._outage - 1, 10)))
            return
        if self._outage:
            log.info("Redis answers again", failed_polls=self._outage)
            self._outage = 0

    async def start_jobs(self, job_ids: list[bytes]) -> None:
        """Start as many of `job_ids` as there are free job slots, in one script per batch."""
        remaining = list(job_ids)
        while remaining:
            taken = await self.take_slots(len(remaining))
            slots = min(taken, self.slots_for_new_jobs())
            if slots <= 0:
                self.give_back_slots(taken)
                return None
            batch, remaining = remaining[:slots], remaining[slots:]
            try:
                claimed = await self.claim_due(batch)
            except BaseException:
                self.give_back_slots(taken)  # Redis failed: the slots must not leak
                raise
            for job_id, score in claimed:
                self.run_claimed(job_id, score)
            # Slots of ids taken by another worker, finished meanwhile, or not due yet.
            self.give_back_slots(taken - len(claimed))
        return None
