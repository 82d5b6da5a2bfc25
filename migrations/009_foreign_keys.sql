-- 009: foreign keys to the cross-service tables (the seed's
-- 008_add_foreign_key_constraints): tenants for every tenant table, and users,
-- events and orders where a column refers to them. References inside the ticket
-- schema are declared with their tables.
--
-- tenant_access_violations has no foreign keys on purpose: recording a violation
-- must never fail.

DO $$
DECLARE
    v_fk record;
BEGIN
    FOR v_fk IN
        SELECT * FROM (VALUES
            -- tenants
            ('ticket_types', 'tenant_id', 'tenants', 'fk_ticket_types_tenant'),
            ('reservations', 'tenant_id', 'tenants', 'fk_reservations_tenant'),
            ('tickets', 'tenant_id', 'tenants', 'fk_tickets_tenant'),
            ('ticket_transfers', 'tenant_id', 'tenants', 'fk_ticket_transfers_tenant'),
            ('ticket_validations', 'tenant_id', 'tenants', 'fk_ticket_validations_tenant'),
            ('refunds', 'tenant_id', 'tenants', 'fk_refunds_tenant'),
            ('waitlist', 'tenant_id', 'tenants', 'fk_waitlist_tenant'),
            ('ticket_price_history', 'tenant_id', 'tenants', 'fk_ticket_price_history_tenant'),
            ('ticket_holds', 'tenant_id', 'tenants', 'fk_ticket_holds_tenant'),
            ('ticket_bundles', 'tenant_id', 'tenants', 'fk_ticket_bundles_tenant'),
            ('ticket_bundle_items', 'tenant_id', 'tenants', 'fk_ticket_bundle_items_tenant'),
            ('ticket_audit_log', 'tenant_id', 'tenants', 'fk_ticket_audit_log_tenant'),
            ('ticket_notifications', 'tenant_id', 'tenants', 'fk_ticket_notifications_tenant'),
            ('discounts', 'tenant_id', 'tenants', 'fk_discounts_tenant'),
            ('order_discounts', 'tenant_id', 'tenants', 'fk_order_discounts_tenant'),
            ('outbox', 'tenant_id', 'tenants', 'fk_outbox_tenant'),
            ('reservation_history', 'tenant_id', 'tenants', 'fk_reservation_history_tenant'),
            ('ticket_scans', 'tenant_id', 'tenants', 'fk_ticket_scans_tenant'),
            ('pending_transactions', 'tenant_id', 'tenants', 'fk_pending_transactions_tenant'),
            ('blockchain_sync_log', 'tenant_id', 'tenants', 'fk_blockchain_sync_log_tenant'),
            ('idempotency_keys', 'tenant_id', 'tenants', 'fk_idempotency_keys_tenant'),
            ('spending_limits', 'tenant_id', 'tenants', 'fk_spending_limits_tenant'),
            ('spending_transactions', 'tenant_id', 'tenants', 'fk_spending_transactions_tenant'),
            ('account_lockout_events', 'tenant_id', 'tenants', 'fk_account_lockout_events_tenant'),
            ('multisig_approval_requests', 'tenant_id', 'tenants',
             'fk_multisig_approval_requests_tenant'),
            ('multisig_approvals', 'tenant_id', 'tenants', 'fk_multisig_approvals_tenant'),
            ('multisig_rejections', 'tenant_id', 'tenants', 'fk_multisig_rejections_tenant'),
            -- users
            ('tickets', 'user_id', 'users', 'fk_tickets_user'),
            ('reservations', 'user_id', 'users', 'fk_reservations_user'),
            ('ticket_transfers', 'from_user_id', 'users', 'fk_ticket_transfers_from_user'),
            ('ticket_transfers', 'to_user_id', 'users', 'fk_ticket_transfers_to_user'),
            ('ticket_validations', 'validated_by', 'users', 'fk_ticket_validations_validated_by'),
            ('refunds', 'user_id', 'users', 'fk_refunds_user'),
            ('waitlist', 'user_id', 'users', 'fk_waitlist_user'),
            ('spending_limits', 'user_id', 'users', 'fk_spending_limits_user'),
            ('spending_transactions', 'user_id', 'users', 'fk_spending_transactions_user'),
            ('account_lockout_events', 'user_id', 'users', 'fk_account_lockout_events_user'),
            ('multisig_approval_requests', 'requested_by', 'users',
             'fk_multisig_approval_requests_requested_by'),
            ('multisig_approvals', 'approver_id', 'users', 'fk_multisig_approvals_approver'),
            ('multisig_rejections', 'rejector_id', 'users', 'fk_multisig_rejections_rejector'),
            -- events
            ('ticket_types', 'event_id', 'events', 'fk_ticket_types_event'),
            ('tickets', 'event_id', 'events', 'fk_tickets_event'),
            ('reservations', 'event_id', 'events', 'fk_reservations_event'),
            ('pending_transactions', 'event_id', 'events', 'fk_pending_transactions_event'),
            ('ticket_scans', 'event_id', 'events', 'fk_ticket_scans_event'),
            ('ticket_validations', 'event_id', 'events', 'fk_ticket_validations_event'),
            ('waitlist', 'event_id', 'events', 'fk_waitlist_event'),
            ('ticket_holds', 'event_id', 'events', 'fk_ticket_holds_event'),
            ('ticket_bundles', 'event_id', 'events', 'fk_ticket_bundles_event'),
            ('discounts', 'event_id', 'events', 'fk_discounts_event'),
            -- orders
            ('tickets', 'order_id', 'orders', 'fk_tickets_order'),
            ('reservations', 'order_id', 'orders', 'fk_reservations_order'),
            ('refunds', 'order_id', 'orders', 'fk_refunds_order'),
            ('order_discounts', 'order_id', 'orders', 'fk_order_discounts_order')
        ) AS f (table_name, column_name, ref_table, constraint_name)
    LOOP
        EXECUTE format('ALTER TABLE %I ADD CONSTRAINT %I FOREIGN KEY (%I) REFERENCES %I (id)',
                       v_fk.table_name, v_fk.constraint_name, v_fk.column_name, v_fk.ref_table);
    END LOOP;
END;
$$;
