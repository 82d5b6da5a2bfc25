"""Arq's worker, starting the jobs of one poll with one Redis script.

Arq starts each job with four round trips (WATCH, EXISTS, ZSCORE, then MULTI/PSETEX/EXEC),
one job after another; at hundreds of jobs a second that is a large share of the worker's
time. This script makes the same check-and-claim for every job id of a poll atomically:
a job is taken when nobody holds its in-progress key and it is due in the queue. Everything
else (running, retrying, finishing a job) stays Arq's own.

It relies on Arq's key layout (`arq.constants.in_progress_key_prefix`) and on the
attributes its own `start_jobs` uses; the worker tests run real Arq workers over it.

It also rides out a Redis outage (a restart, a failover): Arq's poll lets a connection
error end the worker; here the poll is tried again after a backoff, and the worker goes on
once Redis answers. Nothing is lost meanwhile: recorded requests wait in PostgreSQL.
"""

from __future__ import annotations

import asyncio
from typing import Final

from arq.constants import in_progress_key_prefix
from arq.utils import timestamp_ms
from arq.worker import Worker
from redis.commands.core import AsyncScript
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from chainworker.obs import logs

# Between polls while Redis does not answer: doubling from the first, up to the last.
OUTAGE_BACKOFF_SECONDS: Final = (0.2, 5.0)

log = logs.get_logger(__name__)

# ARGV: queue, in-progress key prefix, in-progress timeout (ms), now (ms), job ids...
# Returns the started ids with their scores: id, score, id, score, ...
_CLAIM: Final = """
local queue, prefix, timeout, now = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local started = {}
for i = 5, #ARGV do
    local id = ARGV[i]
    local key = prefix .. id
    if redis.call('EXISTS', key) == 0 then
        local score = redis.call('ZSCORE', queue, id)
        if score and tonumber(score) <= now then
            redis.call('PSETEX', key, timeout, '1')
            started[#started + 1] = id
            started[#started + 1] = score
        end
    end
end
return started
"""


class BatchStartWorker(Worker):
    _claim: AsyncScript | None = None  # registered once the worker has its Redis pool
    _outage = 0  # polls in a row that Redis did not answer

    async def _poll_iteration(self) -> None:
        """Arq's poll; a Redis that does not answer now is polled again, not the end."""
        try:
            await super()._poll_iteration()
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
        if self._claim is None:
            self._claim = self.pool.register_script(_CLAIM)
        claim = self._claim
        remaining = list(job_ids)
        timeout_ms = int(self.in_progress_timeout_s * 1000)
        while remaining:
            await self.sem.acquire()  # waits for a free slot, as Arq's own start_jobs does
            acquired = 1
            while acquired < len(remaining) and not self.sem.locked():
                await self.sem.acquire()  # a free slot: returns without waiting
                acquired += 1
            slots = min(acquired, self.max_jobs - self.job_counter)
            if slots <= 0:
                self._release(acquired)
                return None
            batch, remaining = remaining[:slots], remaining[slots:]
            try:
                reply = await claim(
                    args=[self.queue_name, in_progress_key_prefix, timeout_ms, timestamp_ms(),
                          *batch]
                )
            except BaseException:
                self._release(acquired)  # Redis failed: the slots must not leak
                raise
            for index in range(0, len(reply), 2):
                job_id = reply[index].decode()
                self.job_counter += 1
                task = self.loop.create_task(self.run_job(job_id, int(float(reply[index + 1]))))
                task.add_done_callback(lambda _: self._release_sem_dec_counter_on_complete())
                self.tasks[job_id] = task
            # Slots of ids taken by another worker, finished meanwhile, or not due yet.
            self._release(acquired - len(reply) // 2)
        return None

    def _release(self, slots: int) -> None:
        for _ in range(slots):
            self.sem.release()
