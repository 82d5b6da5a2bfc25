"""Every CHECK constraint rejects a bad row; every unique constraint rejects a duplicate."""

from __future__ import annotations

import re
from pathlib import Path

import asyncpg
import pytest

from tests.db.conftest import Worlds
from tests.db.world import primary_key

MIGRATIONS = Path(__file__).resolve().parents[2] / "migrations"

# (constraint, table, SET clause that breaks only that rule on tenant A's seeded row)
CHECK_CASES: list[tuple[str, str, str]] = [
    ("chk_tickets_status", "tickets", "status = 'bogus'"),
    ("chk_tickets_price_positive", "tickets", "price = -1"),
    ("chk_tickets_face_value_positive", "tickets", "face_value = -1"),
    ("chk_tickets_resale_price_positive", "tickets", "resale_price = -1"),
    ("chk_tickets_max_resale_price", "tickets", "max_resale_price = 10"),
    ("chk_tickets_scan_count_positive", "tickets", "scan_count = -1"),
    ("chk_tickets_transfer_count_positive", "tickets", "transfer_count = -1"),
    ("chk_tickets_max_transfers_positive", "tickets", "max_transfers = -1"),
    ("chk_tickets_seat_number_positive", "tickets", "seat_number = 0"),
    ("chk_tickets_valid_dates", "tickets", "valid_from = expires_at + interval '1 day'"),
    ("chk_tickets_version_positive", "tickets", "version = 0"),
    ("chk_ticket_types_status", "ticket_types", "status = 'bogus'"),
    ("chk_ticket_types_price_positive", "ticket_types", "price_cents = -1"),
    ("chk_ticket_types_quantity_positive", "ticket_types", "quantity = -1"),
    ("chk_ticket_types_available_quantity", "ticket_types", "available_quantity = quantity + 1"),
    ("chk_ticket_types_reserved_sold_positive", "ticket_types", "sold_quantity = -1"),
    ("chk_ticket_types_max_per_order_positive", "ticket_types", "max_per_order = 0"),
    (
        "chk_ticket_types_sale_dates",
        "ticket_types",
        "sale_starts_at = now(), sale_ends_at = now() - interval '1 day'",
    ),
    ("chk_ticket_types_version_positive", "ticket_types", "version = 0"),
    ("chk_reservations_status", "reservations", "status = 'bogus'"),
    ("chk_reservations_quantity_positive", "reservations", "quantity = 0"),
    ("chk_reservations_total_positive", "reservations", "total_cents = -1"),
    ("chk_reservations_version_positive", "reservations", "version = 0"),
    ("chk_ticket_transfers_status", "ticket_transfers", "status = 'bogus'"),
    ("chk_ticket_transfers_type", "ticket_transfers", "transfer_type = 'bogus'"),
    ("chk_ticket_transfers_price_positive", "ticket_transfers", "price_cents = -1"),
    (
        "chk_ticket_transfers_recipient",
        "ticket_transfers",
        "to_user_id = NULL, to_email = NULL, to_wallet = NULL",
    ),
    ("chk_ticket_transfers_version_positive", "ticket_transfers", "version = 0"),
    ("chk_pending_tx_status", "pending_transactions", "status = 'bogus'"),
    ("chk_pending_tx_type", "pending_transactions", "tx_type = 'bogus'"),
    ("chk_pending_tx_retry_count", "pending_transactions", "retry_count = -1"),
    ("chk_pending_tx_attempt_positive", "pending_transactions", "attempt = 0"),
    ("chk_pending_tx_send_count_positive", "pending_transactions", "send_count = -1"),
    (
        "chk_pending_tx_block_height_positive",
        "pending_transactions",
        "last_valid_block_height = -1",
    ),
    ("chk_pending_tx_not_own_parent", "pending_transactions", "parent_tx_id = id"),
    ("chk_pending_tx_version_positive", "pending_transactions", "version = 0"),
    ("chk_idempotency_keys_status", "idempotency_keys", "status = 'bogus'"),
    ("chk_idempotency_keys_response_status", "idempotency_keys", "response_status = 600"),
    ("chk_idempotency_keys_completed_response", "idempotency_keys", "response_status = NULL"),
    ("chk_refunds_status", "refunds", "status = 'bogus'"),
    ("chk_refunds_amount_positive", "refunds", "amount_cents = 0"),
    ("chk_refunds_version_positive", "refunds", "version = 0"),
    ("chk_waitlist_status", "waitlist", "status = 'bogus'"),
    ("chk_waitlist_quantity_positive", "waitlist", "quantity = 0"),
    ("chk_ticket_holds_status", "ticket_holds", "status = 'bogus'"),
    ("chk_ticket_holds_quantity_positive", "ticket_holds", "quantity = 0"),
    ("chk_ticket_bundles_status", "ticket_bundles", "status = 'bogus'"),
    ("chk_ticket_bundles_price_positive", "ticket_bundles", "price_cents = -1"),
    ("chk_ticket_bundle_items_quantity_positive", "ticket_bundle_items", "quantity = 0"),
    ("chk_ticket_validations_method", "ticket_validations", "validation_method = 'bogus'"),
    ("chk_ticket_notifications_status", "ticket_notifications", "status = 'bogus'"),
    ("chk_ticket_notifications_channel", "ticket_notifications", "channel = 'bogus'"),
    ("chk_discounts_type", "discounts", "discount_type = 'bogus'"),
    ("chk_discounts_value", "discounts", "value = 101"),
    ("chk_discounts_used_count", "discounts", "used_count = max_uses + 1"),
    (
        "chk_discounts_dates",
        "discounts",
        "valid_from = now(), valid_until = now() - interval '1 day'",
    ),
    ("chk_order_discounts_amount_positive", "order_discounts", "amount_cents = -1"),
    ("chk_outbox_attempts_positive", "outbox", "attempts = -1"),
    ("chk_ticket_scans_result", "ticket_scans", "result = 'bogus'"),
    ("chk_ticket_scans_duplicate_flag", "ticket_scans", "is_duplicate = true"),
    ("chk_blockchain_sync_log_status", "blockchain_sync_log", "status = 'bogus'"),
    ("chk_spending_limits_positive", "spending_limits", "per_transaction_limit = -1"),
    ("chk_spending_limits_hierarchy", "spending_limits", "daily_limit = per_transaction_limit - 1"),
    ("chk_spending_limits_hierarchy", "spending_limits", "weekly_limit = daily_limit - 1"),
    ("chk_spending_limits_hierarchy", "spending_limits", "monthly_limit = weekly_limit - 1"),
    ("chk_spending_limits_version_positive", "spending_limits", "version = 0"),
    ("chk_spending_transactions_amount_positive", "spending_transactions", "amount = 0"),
    ("chk_account_lockout_event_type", "account_lockout_events", "event_type = 'bogus'"),
    (
        "chk_account_lockout_failed_count_positive",
        "account_lockout_events",
        "failed_attempt_count = -1",
    ),
    ("chk_multisig_status", "multisig_approval_requests", "status = 'bogus'"),
    (
        "chk_multisig_required_approvals_positive",
        "multisig_approval_requests",
        "required_approvals = 0",
    ),
    (
        "chk_multisig_current_approvals_positive",
        "multisig_approval_requests",
        "current_approvals = -1",
    ),
    ("chk_multisig_version_positive", "multisig_approval_requests", "version = 0"),
    ("chk_orders_status", "orders", "status = 'bogus'"),
    ("chk_orders_total_positive", "orders", "total_cents = -1"),
    ("chk_orders_version_positive", "orders", "version = 0"),
    ("chk_ticket_state_history_actor_type", "ticket_state_history", "actor_type = 'bogus'"),
]

# Rules implied by another one: breaking them breaks both, either may be reported.
IMPLIED_BY = {"chk_ticket_types_quantity_positive": {"chk_ticket_types_available_quantity"}}

# (constraint, table, columns copied from tenant A's row onto tenant B's row)
UNIQUE_CASES: list[tuple[str, str, tuple[str, ...]]] = [
    ("uq_tickets_ticket_number", "tickets", ("ticket_number",)),
    ("uq_tickets_qr_code", "tickets", ("qr_code",)),
    ("uq_tickets_barcode", "tickets", ("barcode",)),
    ("uq_tickets_token_mint", "tickets", ("token_mint",)),
    ("uq_ticket_transfers_transfer_code", "ticket_transfers", ("transfer_code",)),
    ("uq_pending_transactions_tx_signature", "pending_transactions", ("tx_signature",)),
    ("uq_pending_tx_live_ticket", "pending_transactions", ("tenant_id", "ticket_id")),
    (
        "uq_idempotency_keys_tenant_key_operation",
        "idempotency_keys",
        ("tenant_id", "idempotency_key", "operation"),
    ),
    ("uq_discounts_tenant_code", "discounts", ("tenant_id", "code")),
    ("uq_order_discounts_order_discount", "order_discounts", ("order_id", "discount_id")),
    ("uq_ticket_bundle_items_bundle_type", "ticket_bundle_items", ("bundle_id", "ticket_type_id")),
    ("uq_spending_limits_tenant_user", "spending_limits", ("tenant_id", "user_id")),
    ("uq_multisig_approvals_request_approver", "multisig_approvals", ("request_id", "approver_id")),
    (
        "uq_multisig_rejections_request_rejector",
        "multisig_rejections",
        ("request_id", "rejector_id"),
    ),
]


def _names_in_migrations(prefix: str) -> set[str]:
    names: set[str] = set()
    for path in MIGRATIONS.glob("0*.sql"):
        names |= set(
            re.findall(rf"\b({prefix}_[a-z0-9_]+)\s+(?:CHECK|UNIQUE|ON)\b", path.read_text())
        )
    return names


def test_every_check_constraint_has_a_case():
    assert _names_in_migrations("chk") == {case[0] for case in CHECK_CASES}


def test_every_unique_constraint_has_a_case():
    assert _names_in_migrations("uq") == {case[0] for case in UNIQUE_CASES}


class Rollback(Exception):
    pass


@pytest.mark.parametrize(("constraint", "table", "assignment"), CHECK_CASES)
async def test_check_rejects_bad_row(constraint, table, assignment, worlds: Worlds, module_admin):
    pk = await primary_key(module_admin, table)
    row_id = worlds.a[table]
    with pytest.raises(asyncpg.CheckViolationError) as raised:
        async with module_admin.transaction():
            await module_admin.execute(
                f"UPDATE {table} SET {assignment} WHERE {pk} = $1",  # noqa: S608
                row_id,
            )
    reported = raised.value.constraint_name
    assert reported == constraint or reported in IMPLIED_BY.get(constraint, set())
    # the same row without the bad value is fine: the rule, not the row, refused it
    async with module_admin.transaction():
        assert (
            await module_admin.execute(
                f"UPDATE {table} SET {pk} = {pk} WHERE {pk} = $1",  # noqa: S608
                row_id,
            )
            == "UPDATE 1"
        )


@pytest.mark.parametrize(("constraint", "table", "columns"), UNIQUE_CASES)
async def test_unique_rejects_duplicate(constraint, table, columns, worlds: Worlds, module_admin):
    pk = await primary_key(module_admin, table)
    names = ", ".join(columns)
    with pytest.raises(asyncpg.UniqueViolationError) as raised:
        async with module_admin.transaction():
            await module_admin.execute(
                f"UPDATE {table} SET ({names}) = (SELECT {names} FROM {table} WHERE {pk} = $1) "  # noqa: S608
                f"WHERE {pk} = $2",
                worlds.a[table],
                worlds.b[table],
            )
    assert raised.value.constraint_name == constraint
