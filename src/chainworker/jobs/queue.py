"""Arq's queue as the pipeline's JobQueue: what the relay and the sweeper hand work to."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from arq.connections import ArqRedis

from chainworker.jobs import arq_internals
from chainworker.jobs.enqueue import enqueue_jobs
from chainworker.pipeline.context import QueuedJob


@dataclass(frozen=True, slots=True)
class ArqQueue:
    arq: ArqRedis
    queue_name: str

    async def enqueue(self, jobs: Sequence[QueuedJob]) -> int:
        return await enqueue_jobs(self.arq, self.queue_name, jobs)

    async def depth(self) -> int:
        """Jobs waiting in the queue."""
        return await arq_internals.queue_depth(self.arq, self.queue_name)
