"""Scratch databases for the benchmarks: created on the PostgreSQL chainworker finds,
migrated, and dropped afterwards."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import NamedTuple

import asyncpg

from chainworker import services
from chainworker.config import load_settings
from chainworker.db.migrate import migrate


async def create_database(server: services.PgServer, name: str) -> None:
    conn = await asyncpg.connect(server.admin_dsn("postgres"))
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')  # a generated name, not input
    finally:
        await conn.close()


async def drop_database(server: services.PgServer, name: str) -> None:
    conn = await asyncpg.connect(server.admin_dsn("postgres"))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


class Scratch(NamedTuple):
    server: services.PgServer
    name: str
    origin: str  # where the server came from, for the figures' heading


@asynccontextmanager
async def scratch_database(prefix: str = "cw_bench") -> AsyncIterator[Scratch]:
    """A new migrated database, dropped on the way out."""
    server, origin = await services.find_postgres_server(load_settings())
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    await create_database(server, name)
    try:
        await migrate(server.admin_dsn(name))
        yield Scratch(server, name, origin)
    finally:
        await drop_database(server, name)
