-- Rent that comes back. Ticket mints now carry MintCloseAuthority (the platform authority),
-- and a burn that leaves the supply at 0 closes the mint, and a custodial holder's token
-- account, in the same transaction: their lamports go back to the transaction's payer.
-- The tenant paid that rent when the mint was charged (109's settlement), so the burn's
-- confirmation credits it back: a spending_transactions row with a NEGATIVE amount,
-- currency LAM, no user, reference_type 'rent_reclaimed', reference_id the attempt that
-- landed (db/audit.py, in the outcome's transaction).
--
-- 109's totals trigger sums every tenant-wide LAM row as it is inserted, so a credit LOWERS
-- the day, week and month totals of the moment it is written: rent reclaimed this period
-- is that much less spent in it, even when the mint was paid for in an earlier period, and
-- a period's total may then be below zero. Nothing else in 109 changes: reservations and
-- charges still come from attempts' estimates, and a credit is neither.

-- The seed's rule (011) keeps every amount positive; a reclaimed-rent credit is the one
-- row that may be negative. The name stays: the rule is the same for every other row.
-- (coalesce: a CHECK that is NULL passes, and reference_type may be NULL.)
ALTER TABLE spending_transactions DROP CONSTRAINT chk_spending_transactions_amount_positive;
ALTER TABLE spending_transactions ADD CONSTRAINT chk_spending_transactions_amount_positive
    CHECK (amount > 0 OR coalesce(amount < 0 AND reference_type = 'rent_reclaimed'
                                  AND user_id IS NULL AND currency = 'LAM', false));

-- A ticket's credits (GET /v1/tickets/{id}/chain), and the check that an attempt is
-- credited once: by the attempt, among the few rows that are credits.
CREATE INDEX idx_spending_transactions_rent_reclaimed
    ON spending_transactions (tenant_id, reference_id) WHERE reference_type = 'rent_reclaimed';
