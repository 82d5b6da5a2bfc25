-- 011: data validation (the seed's 010_add_check_constraints): the status sets,
-- non-negative amounts and counters, date order, the spending-limit hierarchy and
-- version >= 1 on every optimistically locked table. (orders carries its own in 001.)

-- tickets ---------------------------------------------------------------------
ALTER TABLE tickets
    ADD CONSTRAINT chk_tickets_status CHECK (status IN (
        'available', 'reserved', 'sold', 'minted', 'active', 'transferred', 'checked_in',
        'used', 'revoked', 'refunded', 'expired', 'cancelled')),
    ADD CONSTRAINT chk_tickets_price_positive CHECK (price >= 0 AND price_cents >= 0),
    ADD CONSTRAINT chk_tickets_face_value_positive CHECK (face_value IS NULL OR face_value >= 0),
    ADD CONSTRAINT chk_tickets_resale_price_positive
        CHECK (resale_price IS NULL OR resale_price >= 0),
    ADD CONSTRAINT chk_tickets_max_resale_price
        CHECK (max_resale_price IS NULL OR max_resale_price >= price),
    ADD CONSTRAINT chk_tickets_scan_count_positive CHECK (scan_count >= 0),
    ADD CONSTRAINT chk_tickets_transfer_count_positive CHECK (transfer_count >= 0),
    ADD CONSTRAINT chk_tickets_max_transfers_positive
        CHECK (max_transfers IS NULL OR max_transfers >= 0),
    ADD CONSTRAINT chk_tickets_seat_number_positive CHECK (seat_number IS NULL OR seat_number > 0),
    ADD CONSTRAINT chk_tickets_valid_dates
        CHECK (valid_from IS NULL OR expires_at IS NULL OR valid_from <= expires_at),
    ADD CONSTRAINT chk_tickets_version_positive CHECK (version >= 1);

-- ticket_types ----------------------------------------------------------------
ALTER TABLE ticket_types
    ADD CONSTRAINT chk_ticket_types_status
        CHECK (status IN ('active', 'inactive', 'sold_out', 'archived')),
    ADD CONSTRAINT chk_ticket_types_price_positive CHECK (price_cents >= 0),
    ADD CONSTRAINT chk_ticket_types_quantity_positive CHECK (quantity >= 0),
    ADD CONSTRAINT chk_ticket_types_available_quantity
        CHECK (available_quantity >= 0 AND available_quantity <= quantity),
    ADD CONSTRAINT chk_ticket_types_reserved_sold_positive
        CHECK (reserved_quantity >= 0 AND sold_quantity >= 0),
    ADD CONSTRAINT chk_ticket_types_max_per_order_positive
        CHECK (max_per_order IS NULL OR max_per_order > 0),
    ADD CONSTRAINT chk_ticket_types_sale_dates
        CHECK (sale_starts_at IS NULL OR sale_ends_at IS NULL OR sale_starts_at <= sale_ends_at),
    ADD CONSTRAINT chk_ticket_types_version_positive CHECK (version >= 1);

-- reservations ----------------------------------------------------------------
ALTER TABLE reservations
    ADD CONSTRAINT chk_reservations_status
        CHECK (status IN ('pending', 'active', 'confirmed', 'expired', 'cancelled', 'released')),
    ADD CONSTRAINT chk_reservations_quantity_positive CHECK (quantity > 0),
    ADD CONSTRAINT chk_reservations_total_positive CHECK (total_cents >= 0),
    ADD CONSTRAINT chk_reservations_version_positive CHECK (version >= 1);

-- ticket_transfers ------------------------------------------------------------
ALTER TABLE ticket_transfers
    ADD CONSTRAINT chk_ticket_transfers_status CHECK (status IN (
        'pending', 'accepted', 'rejected', 'cancelled', 'completed', 'expired')),
    ADD CONSTRAINT chk_ticket_transfers_type CHECK (transfer_type IN ('gift', 'sale', 'resale')),
    ADD CONSTRAINT chk_ticket_transfers_price_positive CHECK (price_cents IS NULL OR price_cents >= 0),
    ADD CONSTRAINT chk_ticket_transfers_recipient
        CHECK (to_user_id IS NOT NULL OR to_email IS NOT NULL OR to_wallet IS NOT NULL),
    ADD CONSTRAINT chk_ticket_transfers_version_positive CHECK (version >= 1);

-- pending_transactions ----------------------------------------------------------
ALTER TABLE pending_transactions
    ADD CONSTRAINT chk_pending_tx_status CHECK (status IN (
        'pending', 'confirming', 'confirmed', 'failed', 'expired', 'replaced')),
    ADD CONSTRAINT chk_pending_tx_type CHECK (tx_type IN (
        'mint', 'transfer', 'burn', 'metadata_update', 'verify')),
    ADD CONSTRAINT chk_pending_tx_retry_count CHECK (retry_count >= 0 AND max_retries >= 0),
    ADD CONSTRAINT chk_pending_tx_attempt_positive CHECK (attempt >= 1),
    ADD CONSTRAINT chk_pending_tx_send_count_positive CHECK (send_count >= 0),
    ADD CONSTRAINT chk_pending_tx_block_height_positive
        CHECK (last_valid_block_height IS NULL OR last_valid_block_height >= 0),
    ADD CONSTRAINT chk_pending_tx_not_own_parent CHECK (parent_tx_id IS DISTINCT FROM id),
    ADD CONSTRAINT chk_pending_tx_version_positive CHECK (version >= 1);

-- idempotency_keys --------------------------------------------------------------
ALTER TABLE idempotency_keys
    ADD CONSTRAINT chk_idempotency_keys_status
        CHECK (status IN ('processing', 'completed', 'failed')),
    ADD CONSTRAINT chk_idempotency_keys_response_status
        CHECK (response_status IS NULL OR response_status BETWEEN 100 AND 599),
    ADD CONSTRAINT chk_idempotency_keys_completed_response
        CHECK (status <> 'completed' OR response_status IS NOT NULL);

-- the other tables of 002 -------------------------------------------------------
ALTER TABLE refunds
    ADD CONSTRAINT chk_refunds_status CHECK (status IN (
        'pending', 'approved', 'processing', 'completed', 'rejected', 'failed')),
    ADD CONSTRAINT chk_refunds_amount_positive CHECK (amount_cents > 0),
    ADD CONSTRAINT chk_refunds_version_positive CHECK (version >= 1);

ALTER TABLE waitlist
    ADD CONSTRAINT chk_waitlist_status
        CHECK (status IN ('waiting', 'notified', 'converted', 'expired', 'cancelled')),
    ADD CONSTRAINT chk_waitlist_quantity_positive CHECK (quantity > 0);

ALTER TABLE ticket_holds
    ADD CONSTRAINT chk_ticket_holds_status CHECK (status IN ('active', 'released', 'expired')),
    ADD CONSTRAINT chk_ticket_holds_quantity_positive CHECK (quantity > 0);

ALTER TABLE ticket_bundles
    ADD CONSTRAINT chk_ticket_bundles_status CHECK (status IN ('active', 'inactive', 'archived')),
    ADD CONSTRAINT chk_ticket_bundles_price_positive CHECK (price_cents >= 0);

ALTER TABLE ticket_bundle_items
    ADD CONSTRAINT chk_ticket_bundle_items_quantity_positive CHECK (quantity > 0);

ALTER TABLE ticket_validations
    ADD CONSTRAINT chk_ticket_validations_method
        CHECK (validation_method IN ('qr', 'barcode', 'nfc', 'manual'));

ALTER TABLE ticket_notifications
    ADD CONSTRAINT chk_ticket_notifications_status CHECK (status IN ('pending', 'sent', 'failed')),
    ADD CONSTRAINT chk_ticket_notifications_channel
        CHECK (channel IN ('email', 'sms', 'push', 'webhook'));

ALTER TABLE discounts
    ADD CONSTRAINT chk_discounts_type CHECK (discount_type IN ('percentage', 'fixed')),
    ADD CONSTRAINT chk_discounts_value
        CHECK (value >= 0 AND (discount_type <> 'percentage' OR value <= 100)),
    ADD CONSTRAINT chk_discounts_used_count
        CHECK (used_count >= 0 AND (max_uses IS NULL OR used_count <= max_uses)),
    ADD CONSTRAINT chk_discounts_dates
        CHECK (valid_from IS NULL OR valid_until IS NULL OR valid_from <= valid_until);

ALTER TABLE order_discounts
    ADD CONSTRAINT chk_order_discounts_amount_positive CHECK (amount_cents >= 0);

ALTER TABLE outbox
    ADD CONSTRAINT chk_outbox_attempts_positive CHECK (attempts >= 0);

-- scans and chain log -------------------------------------------------------------
ALTER TABLE ticket_scans
    ADD CONSTRAINT chk_ticket_scans_result CHECK (result IN (
        'accepted', 'duplicate', 'invalid', 'wrong_event', 'expired', 'revoked', 'not_found')),
    ADD CONSTRAINT chk_ticket_scans_duplicate_flag
        CHECK (is_duplicate = (result = 'duplicate'));

ALTER TABLE blockchain_sync_log
    ADD CONSTRAINT chk_blockchain_sync_log_status
        CHECK (status IN ('pending', 'confirmed', 'failed', 'expired', 'skipped', 'reconciled'));

-- security tables -------------------------------------------------------------------
ALTER TABLE spending_limits
    ADD CONSTRAINT chk_spending_limits_positive CHECK (per_transaction_limit >= 0),
    ADD CONSTRAINT chk_spending_limits_hierarchy CHECK (
        per_transaction_limit <= daily_limit
        AND daily_limit <= weekly_limit
        AND weekly_limit <= monthly_limit),
    ADD CONSTRAINT chk_spending_limits_version_positive CHECK (version >= 1);

ALTER TABLE spending_transactions
    ADD CONSTRAINT chk_spending_transactions_amount_positive CHECK (amount > 0);

ALTER TABLE account_lockout_events
    ADD CONSTRAINT chk_account_lockout_event_type
        CHECK (event_type IN ('failed_attempt', 'locked', 'unlocked')),
    ADD CONSTRAINT chk_account_lockout_failed_count_positive CHECK (failed_attempt_count >= 0);

ALTER TABLE multisig_approval_requests
    ADD CONSTRAINT chk_multisig_status
        CHECK (status IN ('pending', 'approved', 'rejected', 'expired', 'executed')),
    ADD CONSTRAINT chk_multisig_required_approvals_positive CHECK (required_approvals >= 1),
    ADD CONSTRAINT chk_multisig_current_approvals_positive CHECK (current_approvals >= 0),
    ADD CONSTRAINT chk_multisig_version_positive CHECK (version >= 1);
