"""Fixtures of the schema tests: two complete tenants in one shared database."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg
import pytest

from tests.db.world import World, seed_world


@dataclass(frozen=True)
class Worlds:
    admin_dsn: str
    app_dsn: str
    service_dsn: str
    a: World
    b: World


@pytest.fixture(scope="module")
async def worlds(module_db) -> Worlds:
    """Tenants A and B with one row in every tenant table, seeded once per module."""
    conn = await asyncpg.connect(module_db.admin_dsn)
    try:
        a = await seed_world(conn, "a")
        b = await seed_world(conn, "b")
    finally:
        await conn.close()
    return Worlds(module_db.admin_dsn, module_db.app_dsn, module_db.service_dsn, a, b)


@pytest.fixture(scope="module")
async def module_admin(worlds: Worlds) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(worlds.admin_dsn)
    try:
        yield conn
    finally:
        await conn.close()


@pytest.fixture(scope="module")
async def module_app(worlds: Worlds) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(worlds.app_dsn)
    try:
        yield conn
    finally:
        await conn.close()


@pytest.fixture(scope="module")
async def module_service(worlds: Worlds) -> AsyncIterator[asyncpg.Connection]:
    """The ticket service's role: every data privilege of the schema, bound by RLS."""
    conn = await asyncpg.connect(worlds.service_dsn)
    try:
        yield conn
    finally:
        await conn.close()


@pytest.fixture
async def explained(admin_conn: asyncpg.Connection) -> AsyncIterator[list[str]]:
    """The executed plans of every statement `admin_conn` runs from here on, functions'
    inner ones too (auto_explain, sent to the client as log messages)."""
    try:
        await admin_conn.execute("LOAD 'auto_explain'")
    except asyncpg.PostgresError as error:
        pytest.skip(f"auto_explain is not available: {error}")
    plans: list[str] = []
    admin_conn.add_log_listener(lambda _conn, message: plans.append(message.message))
    await admin_conn.execute(
        """SET auto_explain.log_min_duration = 0; SET auto_explain.log_analyze = on;
           SET auto_explain.log_nested_statements = on; SET client_min_messages = log"""
    )
    yield plans
    await admin_conn.execute("RESET ROLE; SET client_min_messages = notice")
