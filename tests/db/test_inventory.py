"""Everything the seed document names exists in a migrated database (pg_catalog)."""

from __future__ import annotations

import asyncpg
import pytest

from tests.db.test_constraints import CHECK_CASES, UNIQUE_CASES

SEED_TABLES = {
    # 001_baseline_ticket (18)
    "ticket_types", "reservations", "tickets", "ticket_transfers", "ticket_validations",
    "refunds", "waitlist", "ticket_price_history", "ticket_holds", "ticket_bundles",
    "ticket_bundle_items", "ticket_audit_log", "ticket_notifications", "discounts",
    "order_discounts", "outbox", "reservation_history", "webhook_nonces",
    # 002-005
    "ticket_scans", "pending_transactions", "blockchain_sync_log", "tenant_access_violations",
    "idempotency_keys",
    # 007 (6)
    "spending_limits", "account_lockout_events", "multisig_approval_requests",
    "multisig_approvals", "multisig_rejections", "spending_transactions",
    # 011
    "ticket_state_history",
}  # fmt: skip
CROSS_SERVICE_TABLES = {"tenants", "users", "events", "venues", "orders"}

SEED_FUNCTIONS = {
    "update_ticket_availability_on_reservation", "release_ticket_availability",
    "update_user_ticket_stats", "update_user_events_attended",
    "check_duplicate_scan", "record_scan_attempt",
    "create_pending_transaction", "confirm_transaction", "fail_transaction",
    "has_pending_transaction", "get_pending_transaction_status",
    "current_tenant_id", "set_tenant_context", "clear_tenant_context", "verify_tenant_context",
    "log_tenant_violation",
    "acquire_idempotency_key", "complete_idempotency_key", "release_idempotency_lock",
    "cleanup_expired_idempotency_keys",
    "ticket_status_change_trigger", "can_check_in_ticket", "get_ticket_transfer_history",
    "log_ticket_status_change", "get_ticket_state_history", "log_ticket_status_change_manual",
}  # fmt: skip

SEED_INDEXES = {
    "idx_tickets_tenant_status": "(tenant_id, status)",
    "idx_tickets_user_status": "(user_id, status)",
    "idx_ticket_scans_duplicate_detection": "(ticket_id, scanned_at DESC)",
    "idx_pending_tx_status": "WHERE (status = ANY",
    "idx_outbox_unprocessed": "WHERE (processed_at IS NULL)",
    "idx_pending_tx_expired": "WHERE (status = 'pending'::text)",
    "idx_tickets_search_vector": "USING gin (search_vector)",
    "uq_pending_tx_live_ticket": "WHERE (status = ANY",
}

TICKET_POLICIES = {
    "tickets_view_own", "tickets_update_own", "tickets_venue_owner_view", "tickets_admin_all",
    "tickets_tenant_isolation",
}  # fmt: skip


@pytest.fixture(scope="module")
async def catalog(module_db):
    conn = await asyncpg.connect(module_db.admin_dsn)
    yield conn
    await conn.close()


async def names(conn, sql: str) -> set[str]:
    return {row[0] for row in await conn.fetch(sql)}


async def test_tables(catalog):
    tables = await names(
        catalog,
        "SELECT relname FROM pg_class"
        " WHERE relkind = 'r' AND relnamespace = 'public'::regnamespace",
    )
    assert SEED_TABLES | CROSS_SERVICE_TABLES <= tables
    assert len(SEED_TABLES) == 30


async def test_ticket_columns(catalog):
    columns = await names(
        catalog,
        "SELECT attname FROM pg_attribute WHERE attrelid = 'tickets'::regclass AND attnum > 0"
        " AND NOT attisdropped",
    )
    named = {
        "id", "tenant_id", "event_id", "ticket_type_id", "user_id", "ticket_number", "qr_code",
        "payment_id", "price_cents", "price", "face_value", "section", "row", "seat", "status",
        "is_validated", "is_transferable", "is_nft", "token_mint", "status_reason",
        "status_changed_by", "status_changed_at", "purchased_at", "validated_at", "created_at",
        "updated_at", "deleted_at", "search_vector", "version",
    }  # fmt: skip
    assert named <= columns and len(columns) >= 30
    transfer_columns = await names(
        catalog,
        "SELECT attname FROM pg_attribute WHERE attrelid = 'ticket_transfers'::regclass"
        " AND attnum > 0",
    )
    assert {
        "from_user_id", "to_user_id", "to_email", "transfer_code", "acceptance_code", "status",
        "tx_signature", "blockchain_confirmed", "blockchain_confirmed_at",
    } <= transfer_columns  # fmt: skip
    outbox = await catalog.fetchval("SELECT obj_description('outbox'::regclass, 'pg_class')")
    assert "processed_at" in outbox and "at least once" in outbox


async def test_search_vector_is_kept_current(catalog):
    async with catalog.transaction():
        tenant = await catalog.fetchval("INSERT INTO tenants (name) VALUES ('s') RETURNING id")
        event = await catalog.fetchval(
            "INSERT INTO events (tenant_id, name) VALUES ($1, 'e') RETURNING id", tenant
        )
        ticket = await catalog.fetchval(
            "INSERT INTO tickets (tenant_id, event_id, section) VALUES ($1, $2, 'balcony')"
            " RETURNING id",
            tenant,
            event,
        )
        find = "SELECT id FROM tickets WHERE search_vector @@ to_tsquery('simple', $1)"
        assert await catalog.fetchval(find, "balcony") == ticket
        await catalog.execute("UPDATE tickets SET section = 'stalls' WHERE id = $1", ticket)
        assert await catalog.fetchval(find, "balcony") is None
        assert await catalog.fetchval(find, "stalls") == ticket


async def test_functions(catalog):
    functions = await names(
        catalog, "SELECT proname FROM pg_proc WHERE pronamespace = 'public'::regnamespace"
    )
    assert functions >= SEED_FUNCTIONS
    signatures = {
        row["proname"]: row["args"]
        for row in await catalog.fetch(
            "SELECT proname, pg_get_function_identity_arguments(oid) AS args FROM pg_proc"
            " WHERE pronamespace = 'public'::regnamespace"
        )
    }
    assert signatures["check_duplicate_scan"] == "p_ticket_id uuid, p_time_window_seconds integer"
    assert signatures["confirm_transaction"] == (
        "p_tx_signature text, p_slot bigint, p_block_time timestamp with time zone"
    )
    assert signatures["fail_transaction"] == (
        "p_tx_signature text, p_error_code text, p_error_message text"
    )
    assert signatures["release_idempotency_lock"] == "p_key_id uuid, p_set_failed boolean"
    assert signatures["set_tenant_context"] == "p_tenant_id uuid"
    assert signatures["get_ticket_state_history"] == "p_ticket_id uuid, p_limit integer"
    # every seed function carries its documentation
    undocumented = await names(
        catalog,
        "SELECT proname FROM pg_proc WHERE pronamespace = 'public'::regnamespace"
        " AND obj_description(oid, 'pg_proc') IS NULL",
    )
    assert not (undocumented & SEED_FUNCTIONS)


async def test_triggers(catalog):
    triggers = {
        (row["table"], row["function"])
        for row in await catalog.fetch(
            "SELECT tgrelid::regclass::text AS table, tgfoid::regproc::text AS function"
            " FROM pg_trigger WHERE NOT tgisinternal"
        )
    }
    assert {
        ("reservations", "update_ticket_availability_on_reservation"),
        ("reservations", "release_ticket_availability"),
        ("tickets", "update_user_ticket_stats"),
        ("tickets", "update_user_events_attended"),
        ("tickets", "ticket_status_change_trigger"),
        ("tickets", "log_ticket_status_change"),
        ("ticket_transfers", "validate_ticket_transfer"),
        ("ticket_transfers", "apply_completed_transfer"),
    } <= triggers


async def test_policies(catalog):
    policies = {
        (row["tablename"], row["policyname"]): row
        for row in await catalog.fetch("SELECT * FROM pg_policies WHERE schemaname = 'public'")
    }
    assert {name for table, name in policies if table == "tickets"} == TICKET_POLICIES
    assert policies[("tickets", "tickets_tenant_isolation")]["permissive"] == "RESTRICTIVE"
    for (table, name), row in policies.items():
        if name == f"{table}_tenant_isolation":
            assert "current_setting('app.current_tenant_id'::text, true)" in row["qual"], table
            assert "current_setting('app.current_tenant_id'::text, true)" in row["with_check"]
    # one tenant variable everywhere: app.tenant_id appears in no policy and no function
    assert not [key for key, row in policies.items() if "'app.tenant_id'" in str(row["qual"])]
    assert not await catalog.fetchval(
        "SELECT count(*) FROM pg_proc WHERE pronamespace = 'public'::regnamespace"
        " AND prosrc LIKE '%''app.tenant_id''%'"
    )


async def test_indexes(catalog):
    definitions = {
        row["indexname"]: row["indexdef"]
        for row in await catalog.fetch("SELECT * FROM pg_indexes WHERE schemaname = 'public'")
    }
    for name, fragment in SEED_INDEXES.items():
        assert name in definitions, name
        assert fragment in definitions[name], (name, definitions[name])


async def test_constraints(catalog):
    constraints = {
        row["conname"]: row["contype"]
        for row in await catalog.fetch(
            "SELECT conname, contype::text FROM pg_constraint"
            " WHERE connamespace = 'public'::regnamespace"
        )
    }
    for name, *_ in CHECK_CASES:
        assert constraints.get(name) == "c", name
    for name, *_ in UNIQUE_CASES:
        if name != "uq_pending_tx_live_ticket":  # a partial unique index, not a constraint
            assert constraints.get(name) == "u", name
    foreign = {name for name, kind in constraints.items() if kind == "f" and name.startswith("fk_")}
    assert {
        "fk_tickets_tenant", "fk_tickets_user", "fk_tickets_event", "fk_tickets_order",
        "fk_ticket_types_event", "fk_reservations_user", "fk_pending_transactions_event",
        "fk_refunds_order", "fk_order_discounts_order",
    } <= foreign  # fmt: skip
    assert len(foreign) >= 54
