"""The runtime role gets the least it needs, and the cross-tenant functions refuse bad input.

Tried as an attacker holding chainworker_app's credentials would: write `tenants`, rewrite
the audit trail, ask a SECURITY DEFINER function for everybody's rows with a NULL tenant or
a lease of a year.
"""

from __future__ import annotations

import uuid

import asyncpg
import pytest

from tests.db.conftest import Worlds

# Exactly what chainworker_app may do to each table (migration 106); a new table or
# privilege is a deliberate change here too.
RUNTIME_PRIVILEGES = {
    "tickets": {"SELECT", "UPDATE"},
    "ticket_transfers": {"SELECT", "UPDATE"},
    "events": {"SELECT"},
    "venues": {"SELECT"},
    "users": {"SELECT"},
    "tenants": {"SELECT"},
    "chain_requests": {"SELECT", "INSERT", "UPDATE"},
    "pending_transactions": {"SELECT", "INSERT", "UPDATE"},
    "wallets": {"SELECT", "INSERT", "UPDATE"},
    "outbox": {"SELECT", "INSERT", "UPDATE"},
    "idempotency_keys": {"SELECT", "INSERT", "UPDATE"},
    "multisig_approval_requests": {"SELECT", "INSERT", "UPDATE"},
    "spending_limits": {"SELECT"},
    "api_tokens": {"SELECT", "INSERT"},
    "blockchain_sync_log": {"SELECT", "INSERT"},
    "ticket_state_history": {"SELECT", "INSERT"},
    "spending_transactions": {"SELECT", "INSERT"},
    "multisig_approvals": {"SELECT", "INSERT"},
    "multisig_rejections": {"SELECT", "INSERT"},
    # written only by the spend triggers and chainworker_spend_reserve (migration 109)
    "chainworker_spend_totals": {"SELECT"},
    "chainworker_spend_reservations": {"SELECT"},
    "chainworker_spend_unfolded": {"SELECT"},  # its transaction's notes (migration 117)
    # the platform's fee-payer top-ups (migration 113): recorded and settled, never removed
    "chainworker_fee_payer_top_ups": {"SELECT", "INSERT", "UPDATE"},
    # a tenant's chainworker settings (migration 114): set by an operator, never removed
    "chainworker_tenant_settings": {"SELECT", "INSERT", "UPDATE"},
    # event groups' creations (migration 116): recorded and settled, never removed
    "chainworker_event_groups": {"SELECT", "INSERT", "UPDATE"},
}

# The only functions that run as the owner and that chainworker_app may call.
DEFINER_FUNCTIONS = {
    "chainworker_authenticate", "chainworker_backlog", "chainworker_claim_live_transactions",
    "chainworker_claim_outbox_requests", "chainworker_live_event_groups",
    "chainworker_live_summary",
    "chainworker_locate_request", "chainworker_note_cross_tenant",
    "chainworker_spend_reserve", "chainworker_spend_utilization", "chainworker_stale_requests",
    "chainworker_tenant_ids",
    "cleanup_expired_idempotency_keys",
}  # fmt: skip


async def test_runtime_role_has_exactly_its_table_privileges(module_admin: asyncpg.Connection):
    rows = await module_admin.fetch(
        """SELECT c.relname, a.privilege_type
             FROM pg_class c
             CROSS JOIN LATERAL aclexplode(coalesce(c.relacl, acldefault('r', c.relowner))) a
            WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p', 'v')
              AND a.grantee = 'chainworker_app'::regrole"""
    )
    granted: dict[str, set[str]] = {}
    for row in rows:
        granted.setdefault(row["relname"], set()).add(row["privilege_type"])
    assert granted == RUNTIME_PRIVILEGES


async def test_definer_functions_are_few_and_pinned(module_admin: asyncpg.Connection):
    rows = await module_admin.fetch(
        """SELECT p.proname, p.proconfig
             FROM pg_proc p
            WHERE p.pronamespace = 'public'::regnamespace AND p.prosecdef
              AND has_function_privilege('chainworker_app', p.oid, 'EXECUTE')"""
    )
    assert {row["proname"] for row in rows} == DEFINER_FUNCTIONS
    for row in rows:  # a definer must not find an attacker's function first
        assert any(c.startswith("search_path=") for c in row["proconfig"] or ()), row["proname"]


async def test_runtime_role_cannot_write_tenants_and_sees_only_its_own(
    worlds: Worlds, module_app: asyncpg.Connection
):
    a, b = worlds.a["tenants"], worlds.b["tenants"]
    for statement in (
        "UPDATE tenants SET name = 'taken'",
        "DELETE FROM tenants",
        f"INSERT INTO tenants (id, name) VALUES ('{uuid.uuid4()}', 'forged')",  # noqa: S608
    ):
        async with module_app.transaction():
            await module_app.execute("SELECT set_tenant_context($1)", a)
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await module_app.execute(statement)
    async with module_app.transaction():
        await module_app.execute("SELECT set_tenant_context($1)", a)
        seen = await module_app.fetch("SELECT id FROM tenants")
    assert [row["id"] for row in seen] == [a]
    assert b != a
    assert await module_app.fetch("SELECT id FROM tenants") == []  # no context: nothing


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE blockchain_sync_log SET status = 'forged'",
        "DELETE FROM blockchain_sync_log",
        "UPDATE ticket_state_history SET reason = 'forged'",
        "DELETE FROM spending_transactions",
        "UPDATE api_tokens SET revoked_at = NULL",
        "DELETE FROM tickets",
        "INSERT INTO users (tenant_id) VALUES (current_tenant_id())",
        "SELECT count(*) FROM tenant_access_violations",
        "SELECT count(*) FROM reservations",
    ],
)
async def test_runtime_role_cannot_rewrite_history_or_touch_others_tables(
    statement: str, worlds: Worlds, module_app: asyncpg.Connection
):
    async with module_app.transaction():
        await module_app.execute("SELECT set_tenant_context($1)", worlds.a["tenants"])
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await module_app.execute(statement)


_GOOD_TOKEN = str(uuid.uuid4())


@pytest.mark.parametrize(
    "call",
    [
        "SELECT * FROM chainworker_claim_live_transactions(NULL, 10, 15)",
        "SELECT * FROM chainworker_claim_live_transactions('', 10, 15)",
        "SELECT * FROM chainworker_claim_live_transactions('w', NULL, 15)",
        "SELECT * FROM chainworker_claim_live_transactions('w', 0, 15)",
        "SELECT * FROM chainworker_claim_live_transactions('w', 100000, 15)",
        "SELECT * FROM chainworker_claim_live_transactions('w', 10, NULL)",
        "SELECT * FROM chainworker_claim_live_transactions('w', 10, 0)",
        "SELECT * FROM chainworker_claim_live_transactions('w', 10, 31536000)",
        "SELECT * FROM chainworker_stale_requests(NULL, 10)",
        "SELECT * FROM chainworker_stale_requests(-1, 10)",
        "SELECT * FROM chainworker_stale_requests(30, 0)",
        "SELECT * FROM chainworker_authenticate(NULL)",
        "SELECT * FROM chainworker_claim_outbox_requests(NULL)",
        "SELECT * FROM chainworker_claim_outbox_requests(1000000)",
        "SELECT * FROM chainworker_locate_request(NULL, NULL)",
        f"SELECT * FROM chainworker_locate_request('{_GOOD_TOKEN}', '{'5' * 87}')",  # noqa: S608
        "SELECT * FROM chainworker_locate_request(NULL, 'not a signature')",
        "SELECT * FROM chainworker_live_event_groups(NULL)",
        "SELECT * FROM chainworker_live_event_groups(0)",
        "SELECT * FROM chainworker_tenant_ids(NULL, NULL)",
        "SELECT * FROM chainworker_tenant_ids(NULL, 0)",
        f"SELECT chainworker_note_cross_tenant(NULL, 'k', 'GET /', '{_GOOD_TOKEN}')",
        "SELECT chainworker_note_cross_tenant('tickets', 'k', 'GET /', NULL)",
        f"SELECT chainworker_note_cross_tenant('secrets', '{_GOOD_TOKEN}', 'GET /',"
        f" '{_GOOD_TOKEN}')",
        "SELECT chainworker_spend_reserve(NULL)",
        "SELECT chainworker_spend_reserve('{1, NULL}')",
        "SELECT chainworker_spend_reserve('{-1}')",
        "SELECT chainworker_spend_reserve('{10000000000000000}')",
        "SELECT chainworker_spend_reserve(array_fill(1::bigint, ARRAY[10001]))",
    ],
)
async def test_definer_functions_refuse_null_and_out_of_range_arguments(
    call: str, worlds: Worlds, module_app: asyncpg.Connection, module_admin: asyncpg.Connection
):
    before = await module_admin.fetchval(
        "SELECT count(*) FILTER (WHERE lease_owner IS NOT NULL) FROM pending_transactions"
    )
    async with module_app.transaction():
        await module_app.execute("SELECT set_tenant_context($1)", worlds.a["tenants"])
        with pytest.raises(asyncpg.InvalidParameterValueError):
            await module_app.fetch(call)
    after = await module_admin.fetchval(
        "SELECT count(*) FILTER (WHERE lease_owner IS NOT NULL) FROM pending_transactions"
    )
    assert after == before


async def test_cross_tenant_note_needs_the_callers_tenant(module_app: asyncpg.Connection):
    with pytest.raises(asyncpg.InvalidParameterValueError, match="tenant context"):
        await module_app.fetchval(
            "SELECT chainworker_note_cross_tenant('tickets', $1, 'GET /', $2)",
            str(uuid.uuid4()), uuid.uuid4(),
        )


async def test_a_reservation_needs_the_callers_tenant(module_app: asyncpg.Connection):
    with pytest.raises(asyncpg.InvalidParameterValueError, match="tenant context"):
        await module_app.fetchval("SELECT chainworker_spend_reserve('{1}')")


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE chainworker_spend_totals SET spent = 0",
        "DELETE FROM chainworker_spend_totals",
        "UPDATE chainworker_spend_reservations SET lamports = 0",
        "INSERT INTO chainworker_spend_reservations (tenant_id, side, lamports)"
        " VALUES (current_tenant_id(), 'released', 1e12)",
    ],
)
async def test_runtime_role_cannot_rewrite_spend_totals(
    statement: str, worlds: Worlds, module_app: asyncpg.Connection
):
    async with module_app.transaction():
        await module_app.execute("SELECT set_tenant_context($1)", worlds.a["tenants"])
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await module_app.execute(statement)


async def test_no_function_hands_out_every_tenants_tickets(module_admin: asyncpg.Connection):
    gone = await module_admin.fetch(
        """SELECT proname FROM pg_proc
            WHERE proname IN ('chainworker_minted_tickets', 'chainworker_live_transactions')"""
    )
    assert gone == []
