-- 010: unique constraints (the seed's 009_add_unique_constraints). The
-- idempotency key's (tenant_id, idempotency_key, operation) is declared with its
-- table in 006.

ALTER TABLE tickets ADD CONSTRAINT uq_tickets_ticket_number UNIQUE (ticket_number);
ALTER TABLE tickets ADD CONSTRAINT uq_tickets_qr_code UNIQUE (qr_code);
ALTER TABLE tickets ADD CONSTRAINT uq_tickets_barcode UNIQUE (barcode);
ALTER TABLE tickets ADD CONSTRAINT uq_tickets_token_mint UNIQUE (token_mint);

ALTER TABLE ticket_transfers ADD CONSTRAINT uq_ticket_transfers_transfer_code UNIQUE (transfer_code);
ALTER TABLE pending_transactions ADD CONSTRAINT uq_pending_transactions_tx_signature
    UNIQUE (tx_signature);
ALTER TABLE discounts ADD CONSTRAINT uq_discounts_tenant_code UNIQUE (tenant_id, code);
ALTER TABLE order_discounts ADD CONSTRAINT uq_order_discounts_order_discount
    UNIQUE (order_id, discount_id);
ALTER TABLE ticket_bundle_items ADD CONSTRAINT uq_ticket_bundle_items_bundle_type
    UNIQUE (bundle_id, ticket_type_id);
ALTER TABLE spending_limits ADD CONSTRAINT uq_spending_limits_tenant_user UNIQUE (tenant_id, user_id);
ALTER TABLE multisig_approvals ADD CONSTRAINT uq_multisig_approvals_request_approver
    UNIQUE (request_id, approver_id);
ALTER TABLE multisig_rejections ADD CONSTRAINT uq_multisig_rejections_request_rejector
    UNIQUE (request_id, rejector_id);

-- At most one live (pending or confirming) transaction per ticket: a second
-- worker's attempt to record one for the same ticket fails here.
CREATE UNIQUE INDEX uq_pending_tx_live_ticket ON pending_transactions (tenant_id, ticket_id)
    WHERE status IN ('pending', 'confirming');
COMMENT ON INDEX uq_pending_tx_live_ticket IS
    'At most one live (pending|confirming) transaction per (tenant_id, ticket_id).';
