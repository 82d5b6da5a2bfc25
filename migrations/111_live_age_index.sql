-- reconcile's index of live attempts no longer competes with the live-ticket probe.
--
-- 106 indexed live attempts by (tenant_id, submitted_at, id) for reconcile's per-tenant
-- scan. On a table the planner has no statistics for yet (a new database, the first minute
-- of a burst), an equality on tenant_id and ticket_id costs the same through that index as
-- through uq_pending_tx_live_ticket, and the planner took the newer one: every check of
-- "does this ticket have a live attempt" then read all of the tenant's live attempts
-- (0.5 ms each at 1,300 live, a third of a worker's database time at 600 mints/s).
--
-- Indexed by age alone, it serves only scans by age: reconcile reads the live attempts
-- older than its threshold, oldest first, and leaves out other tenants' by the tenant
-- condition (few are old in a healthy system; those that are, are what it is for).
DROP INDEX idx_pending_tx_tenant_live;
CREATE INDEX idx_pending_tx_live_age ON pending_transactions (submitted_at, id)
    WHERE status IN ('pending', 'confirming');
COMMENT ON INDEX idx_pending_tx_live_age IS
    'Live attempts oldest first: reconcile''s scan of those older than its threshold.';
