"""The pipeline's tests run on the jobs tests' stack: a fresh database, Redis, a localnet."""

from tests.jobs.conftest import admin, arq, stack

__all__ = ["admin", "arq", "stack"]
