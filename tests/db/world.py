"""A complete tenant: one row in every tenant table, inserted as the admin (owner path).

`seed_world` returns the primary key of each table's row, keyed by table name, so
tests can address "this tenant's row of table X" generically.
"""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg

# The cells a row needs beyond tenant_id; "$name" refers to another table's row id.
# Order matters: a row may only refer to rows above it.
ROWS: list[tuple[str, dict[str, Any]]] = [
    ("users", {"email": "{label}@example.test", "role": "user"}),
    ("venues", {"name": "Hall {label}", "created_by": "$users"}),
    (
        "events",
        {"venue_id": "$venues", "name": "Show {label}", "starts_at": "now() + interval '1 day'"},
    ),
    ("orders", {"user_id": "$users", "event_id": "$events", "status": "paid", "total_cents": 5000}),
    (
        "ticket_types",
        {
            "event_id": "$events",
            "name": "GA",
            "price_cents": 5000,
            "quantity": 100,
            "available_quantity": 100,
        },
    ),
    (
        "reservations",
        {
            "event_id": "$events",
            "ticket_type_id": "$ticket_types",
            "user_id": "$users",
            "quantity": 2,
            "total_cents": 10000,
        },
    ),
    (
        "tickets",
        {
            "event_id": "$events",
            "ticket_type_id": "$ticket_types",
            "user_id": "$users",
            "order_id": "$orders",
            "ticket_number": "TKT-{unique}",
            "qr_code": "QR-{unique}",
            "barcode": "BC-{unique}",
            "token_mint": "MINT{unique}",
            "price_cents": 5000,
            "price": 50,
            "face_value": 50,
            "resale_price": 60,
            "max_resale_price": 75,
            "seat_number": 7,
            "max_transfers": 3,
            "status": "sold",
            "valid_from": "now()",
            "expires_at": "now() + interval '2 days'",
        },
    ),
    (
        "ticket_transfers",
        {"ticket_id": "$tickets", "to_user_id": "$users", "transfer_code": "TC-{unique}"},
    ),
    (
        "ticket_validations",
        {
            "ticket_id": "$tickets",
            "event_id": "$events",
            "validated_by": "$users",
            "is_valid": True,
        },
    ),
    (
        "refunds",
        {"order_id": "$orders", "ticket_id": "$tickets", "user_id": "$users", "amount_cents": 100},
    ),
    ("waitlist", {"event_id": "$events", "ticket_type_id": "$ticket_types", "user_id": "$users"}),
    ("ticket_price_history", {"ticket_type_id": "$ticket_types", "new_price_cents": 5000}),
    ("ticket_holds", {"event_id": "$events", "ticket_type_id": "$ticket_types", "quantity": 1}),
    ("ticket_bundles", {"event_id": "$events", "name": "Pair", "price_cents": 9000}),
    ("ticket_bundle_items", {"bundle_id": "$ticket_bundles", "ticket_type_id": "$ticket_types"}),
    ("ticket_audit_log", {"ticket_id": "$tickets", "action": "created"}),
    ("ticket_notifications", {"ticket_id": "$tickets", "user_id": "$users", "type": "purchase"}),
    (
        "discounts",
        {"event_id": "$events", "code": "SAVE10", "value": 10, "max_uses": 5, "used_count": 1},
    ),
    ("order_discounts", {"order_id": "$orders", "discount_id": "$discounts", "amount_cents": 500}),
    (
        "outbox",
        {"aggregate_type": "ticket", "aggregate_id": "$tickets", "event_type": "ticket.sold"},
    ),
    (
        "reservation_history",
        {"reservation_id": "$reservations", "new_status": "active"},
    ),
    ("ticket_scans", {"ticket_id": "$tickets", "event_id": "$events", "result": "accepted"}),
    (
        "pending_transactions",
        {
            "ticket_id": "$tickets",
            "event_id": "$events",
            "tx_signature": "SIG{unique}",
            "tx_type": "mint",
            "last_valid_block_height": 1000,
        },
    ),
    (
        "blockchain_sync_log",
        {
            "entity_type": "ticket",
            "entity_id": "$tickets",
            "operation": "mint",
            "status": "pending",
        },
    ),
    ("tenant_access_violations", {"operation": "select", "table_name": "tickets"}),
    (
        "idempotency_keys",
        {
            "idempotency_key": "key-1",
            "operation": "mint",
            "request_hash": "h1",
            "status": "completed",
            "response_status": 200,
        },
    ),
    (
        "spending_limits",
        {
            "user_id": "$users",
            "per_transaction_limit": 10,
            "daily_limit": 100,
            "weekly_limit": 500,
            "monthly_limit": 1000,
        },
    ),
    ("spending_transactions", {"user_id": "$users", "amount": 5}),
    ("account_lockout_events", {"user_id": "$users", "event_type": "failed_attempt"}),
    (
        "multisig_approval_requests",
        {"operation_type": "bulk_refund", "requested_by": "$users", "required_approvals": 2},
    ),
    ("multisig_approvals", {"request_id": "$multisig_approval_requests", "approver_id": "$users"}),
    ("multisig_rejections", {"request_id": "$multisig_approval_requests", "rejector_id": "$users"}),
    ("ticket_state_history", {"ticket_id": "$tickets", "new_status": "sold"}),
    # chainworker's own tables (migrations 100+)
    ("chain_requests", {"ticket_id": "$tickets", "operation": "mint"}),
    ("wallets", {"user_id": "$users", "address": "{wallet}"}),
    ("api_tokens", {"name": "ticket service", "user_id": "$users", "token_hash": "{hash}"}),
    # a day long past and nothing in flight: no limit check or gauge sees them
    (
        "chainworker_spend_totals",
        {"period": "day", "period_start": "now()::date - 400", "spent": 5},
    ),
    ("chainworker_spend_reservations", {"side": "released", "lamports": 0}),
    ("chainworker_tenant_settings", {"record_check_in": True}),
    # settled long ago: the group round never sees it
    (
        "chainworker_event_groups",
        {
            "event_id": "$events",
            "group_mint": "{wallet}",
            "tx_signature": "GSIG{unique}",
            "blockhash": "BH{unique}",
            "last_valid_block_height": 1000,
            "serialized_tx": b"\x00",
            "status": "failed",
            "settled_at": "now()",
        },
    ),
]

_BASE58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"

World = dict[str, Any]


def _wallet(seed: int) -> str:
    digits = []
    for _ in range(44):
        seed, rest = divmod(seed, 58)
        digits.append(_BASE58[rest])
    return "".join(digits)


async def seed_world(conn: asyncpg.Connection, label: str) -> World:
    """Create a tenant with one row in every table of ROWS; returns {table: primary key}."""
    unique = uuid.uuid4().hex[:12]
    world: World = {
        "tenants": await conn.fetchval(
            "INSERT INTO tenants (name, slug) VALUES ($1, $2) RETURNING id", label, unique
        )
    }
    existing = {
        row["relname"]
        for row in await conn.fetch(
            "SELECT relname FROM pg_class"
            " WHERE relkind = 'r' AND relnamespace = 'public'::regnamespace"
        )
    }
    for table, cells in ROWS:
        if table not in existing:
            continue
        columns = ["tenant_id"]
        values: list[str] = ["$1"]
        args: list[Any] = [world["tenants"]]
        for column, value in cells.items():
            columns.append(column)
            if isinstance(value, str) and value.startswith("$"):
                args.append(world[value[1:]])
                values.append(f"${len(args)}")
            elif isinstance(value, str) and value.startswith("now()"):
                values.append(value)
            else:
                if isinstance(value, str):
                    value = value.format(
                        label=label,
                        unique=unique,
                        wallet=_wallet(uuid.uuid4().int),
                        hash=uuid.uuid4().hex + uuid.uuid4().hex,
                    )
                args.append(value)
                values.append(f"${len(args)}")
        sql = (
            f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join(values)}) "  # noqa: S608
            f"RETURNING {await primary_key(conn, table)}"
        )
        world[table] = await conn.fetchval(sql, *args)
    return world


_PRIMARY_KEYS: dict[str, str] = {}


async def primary_key(conn: asyncpg.Connection, table: str) -> str:
    if table not in _PRIMARY_KEYS:
        _PRIMARY_KEYS[table] = await conn.fetchval(
            """SELECT a.attname FROM pg_index i
                 JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
                WHERE i.indrelid = $1::regclass AND i.indisprimary""",
            table,
        )
    return _PRIMARY_KEYS[table]


async def tenant_tables(conn: asyncpg.Connection) -> list[str]:
    """Every table of the public schema with a tenant_id column."""
    rows = await conn.fetch(
        """SELECT c.relname FROM pg_class c
             JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'tenant_id'
                                 AND NOT a.attisdropped
            WHERE c.relkind = 'r' AND c.relnamespace = 'public'::regnamespace
            ORDER BY c.relname"""
    )
    return [row["relname"] for row in rows]
