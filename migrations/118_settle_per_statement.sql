-- An attempt's spend settles with the statement that ends it, not row by row.
--
-- Until now a row trigger settled each attempt that stopped being live (migration 112's
-- trg_pending_transactions_spend): for every confirmed attempt one call of
-- chainworker_spend_settle, one INSERT of a release note, one INSERT into
-- spending_transactions, one run of its statement trigger, and at commit one deferred
-- fold per note. A confirmation round of 2,048 attempts ran some 14,000 statements for
-- its spending alone, each with its own executor setup.
--
-- Now one statement trigger reads the statement's old and new rows (transition tables)
-- and settles them all at once: the releases as one note per tenant, the charges as one
-- multi-row INSERT into spending_transactions (so its counter runs once, and folds once
-- at commit). What is settled is the same, row for row, whatever writes the attempts:
-- the seed's confirm_transaction and fail_transaction, an operator, chainworker. A
-- transition table cannot go with a column list or a WHEN clause, so the trigger runs for
-- every UPDATE of pending_transactions; one that changes no status (a lease, a
-- rebroadcast mark) joins its rows and settles nothing.

DROP TRIGGER IF EXISTS trg_pending_transactions_spend ON pending_transactions;

-- 112's WHEN clause: an attempt settles when it leaves pending/confirming, or when an ended
-- one becomes confirmed or failed (it paid after all).
CREATE FUNCTION chainworker_attempt_settles(p_old text, p_new text) RETURNS boolean
LANGUAGE sql IMMUTABLE AS $$
    SELECT p_old IS DISTINCT FROM p_new
       AND p_new NOT IN ('pending', 'confirming')
       AND (p_old IN ('pending', 'confirming') OR p_new IN ('confirmed', 'failed'))
$$;

CREATE FUNCTION chainworker_spend_settle_rows() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    -- Most updates settle nothing (leases, marks, observations): they write nothing, for
    -- an INSERT of no rows would still run spending_transactions' statement trigger.
    PERFORM 1
       FROM settle_old o
       JOIN settle_new n ON n.id = o.id
      WHERE chainworker_attempt_settles(o.status, n.status)
      LIMIT 1;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    WITH settled AS MATERIALIZED (
        SELECT n.id, n.tenant_id,
               CASE WHEN o.status IN ('pending', 'confirming')
                    THEN chainworker_lamports(o.metadata->'spend_reserved') ELSE 0 END
                   AS release,
               chainworker_attempt_paid(n.status, n.metadata)
                   - chainworker_attempt_paid(o.status, o.metadata) AS charge
          FROM settle_old o
          JOIN settle_new n ON n.id = o.id
         WHERE chainworker_attempt_settles(o.status, n.status)
    ), released AS (
        INSERT INTO chainworker_spend_unfolded (tenant_id, release)
        SELECT s.tenant_id, sum(s.release) FROM settled s
         WHERE s.release > 0
         GROUP BY s.tenant_id
    )
    INSERT INTO spending_transactions
           (tenant_id, user_id, amount, currency, reference_type, reference_id, created_at)
    SELECT s.tenant_id, NULL, s.charge, 'LAM', 'pending_transaction', s.id, now()
      FROM settled s
     WHERE s.charge > 0
     ORDER BY s.id;
    RETURN NULL;
END;
$$;
COMMENT ON FUNCTION chainworker_spend_settle_rows() IS
    'AFTER UPDATE statement trigger on pending_transactions: for every attempt the statement '
    'took out of pending/confirming, notes its reservation released; for every attempt that '
    'now paid more (confirmed: fee and rent; failed: the fee), charges the difference to '
    'spending_transactions. One note per tenant and one INSERT per statement.';

CREATE TRIGGER trg_pending_transactions_spend AFTER UPDATE ON pending_transactions
    REFERENCING OLD TABLE AS settle_old NEW TABLE AS settle_new
    FOR EACH STATEMENT EXECUTE FUNCTION chainworker_spend_settle_rows();

REVOKE ALL ON FUNCTION chainworker_spend_settle_rows() FROM PUBLIC, chainworker_app;

DROP FUNCTION chainworker_spend_settle();
