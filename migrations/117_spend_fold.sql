-- A settlement moves its tenant's spending rows once, at its commit.
--
-- Until now each landed attempt added its charge to the tenant's day, week and month totals
-- (migration 109) and its release to the tenant's released row as it settled: a settlement
-- of 256 attempts updated those four rows about a thousand times and held them from its
-- first attempt to its commit. The settlements of one tenant, several at once in each
-- confirmation round, queued on them one after the other: under a burst a round took
-- seconds to settle, and the confirmations fell behind the sends.
--
-- Now a charge or a release is noted in chainworker_spend_unfolded, under the transaction
-- that made it, and a deferred trigger adds the transaction's notes to the released row and
-- the totals in one statement each when it commits, then deletes them. The rows are locked
-- only for the commit, and in the order settlements always took them (released, then the
-- totals, in key order). Others see a settlement's charges and releases together with the
-- rest of it, as before; the settling transaction itself sees its own through
-- chainworker_spend_reserve, which adds them to the folded rows: a replacement signed in
-- the transaction that ended its attempt is weighed as if that had committed.

CREATE TABLE chainworker_spend_unfolded (
    xact        xid8 NOT NULL DEFAULT pg_current_xact_id(),
    tenant_id   uuid NOT NULL,
    charged_at  timestamptz,
    charge      numeric(20, 2) NOT NULL DEFAULT 0,  -- below 0: rent reclaimed (115)
    release     numeric(30, 2) NOT NULL DEFAULT 0,
    CONSTRAINT chk_spend_unfolded_release CHECK (release >= 0),
    CONSTRAINT chk_spend_unfolded_charged_at CHECK (charge = 0 OR charged_at IS NOT NULL)
);
CREATE INDEX idx_spend_unfolded_xact ON chainworker_spend_unfolded (xact);
COMMENT ON TABLE chainworker_spend_unfolded IS
    'Charges and releases of transactions not yet committed, added to '
    'chainworker_spend_totals and chainworker_spend_reservations when they commit (and then '
    'deleted); empty between transactions.';
SELECT enable_tenant_isolation('chainworker_spend_unfolded');


-- At commit: the transaction's notes, into the released rows, then the totals (key order).
-- The first firing folds them all; the others find none. chainworker's transactions touch
-- one tenant each (their context), so its settlements never take released rows in two
-- orders.
CREATE FUNCTION chainworker_spend_fold() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    -- Never more than is in flight: whatever wrote the rows, the others stay held.
    WITH moved AS (
        DELETE FROM chainworker_spend_unfolded u
         WHERE u.xact = pg_current_xact_id() AND u.release > 0
        RETURNING u.tenant_id, u.release
    )
    UPDATE chainworker_spend_reservations AS f
       SET lamports = f.lamports + least(m.release, greatest(r.lamports - f.lamports, 0))
      FROM (SELECT moved.tenant_id, sum(moved.release) AS release
              FROM moved GROUP BY moved.tenant_id) AS m,
           chainworker_spend_reservations AS r
     WHERE f.tenant_id = m.tenant_id AND f.side = 'released'
       AND r.tenant_id = m.tenant_id AND r.side = 'reserved';
    WITH moved AS (
        DELETE FROM chainworker_spend_unfolded u
         WHERE u.xact = pg_current_xact_id()
        RETURNING u.tenant_id, u.charged_at, u.charge
    )
    INSERT INTO chainworker_spend_totals AS t (tenant_id, period, period_start, spent)
    SELECT m.tenant_id, p.period, p.period_start, sum(m.charge)
      FROM moved m
     CROSS JOIN LATERAL chainworker_spend_periods(m.charged_at) p
     WHERE m.charge <> 0
     GROUP BY m.tenant_id, p.period, p.period_start
     ORDER BY m.tenant_id, p.period, p.period_start
    ON CONFLICT (tenant_id, period, period_start) DO UPDATE SET spent = t.spent + EXCLUDED.spent;
    RETURN NULL;
END;
$$;
COMMENT ON FUNCTION chainworker_spend_fold() IS
    'Deferred trigger on chainworker_spend_unfolded: at commit, adds the transaction''s '
    'releases to its tenants'' released rows and its charges to their day, week and month '
    'totals, then deletes its notes.';

CREATE CONSTRAINT TRIGGER trg_spend_unfolded_fold AFTER INSERT ON chainworker_spend_unfolded
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION chainworker_spend_fold();


-- 109's charge counter: notes the statement's tenant-wide LAM charges.
CREATE OR REPLACE FUNCTION chainworker_spend_count() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    INSERT INTO chainworker_spend_unfolded (tenant_id, charged_at, charge)
    SELECT a.tenant_id, a.created_at, sum(a.amount)
      FROM added a
     WHERE a.user_id IS NULL AND a.currency = 'LAM'
     GROUP BY a.tenant_id, a.created_at;
    RETURN NULL;
END;
$$;
COMMENT ON FUNCTION chainworker_spend_count() IS
    'AFTER INSERT statement trigger on spending_transactions: notes tenant-wide LAM charges, '
    'which reach the day, week and month totals of their created_at when the transaction '
    'commits (chainworker_spend_fold).';


-- 109's settlement: notes the release; the charge is a spending_transactions row, as before.
CREATE OR REPLACE FUNCTION chainworker_spend_settle() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    v_release numeric := chainworker_lamports(OLD.metadata->'spend_reserved');
    v_charge  numeric := chainworker_attempt_paid(NEW.status, NEW.metadata)
                         - chainworker_attempt_paid(OLD.status, OLD.metadata);
BEGIN
    IF OLD.status IN ('pending', 'confirming') AND NEW.status NOT IN ('pending', 'confirming')
       AND v_release > 0 THEN
        INSERT INTO chainworker_spend_unfolded (tenant_id, release)
        VALUES (NEW.tenant_id, v_release);
    END IF;
    IF v_charge > 0 THEN
        INSERT INTO spending_transactions
               (tenant_id, user_id, amount, currency, reference_type, reference_id, created_at)
        VALUES (NEW.tenant_id, NULL, v_charge, 'LAM', 'pending_transaction', NEW.id, now());
    END IF;
    RETURN NULL;
END;
$$;


-- What a tenant spent per period: the folded totals and, visible only to the transaction
-- that wrote them, its own notes. The readers below weigh both (and the releases likewise), so that what a transaction
-- settled counts for what it signs next.
CREATE FUNCTION chainworker_spend_spent(p_tenant uuid)
RETURNS TABLE (period text, period_start date, spent numeric)
LANGUAGE sql STABLE AS $$
    SELECT s.period, s.period_start, s.spent
      FROM chainworker_spend_totals s
     WHERE s.tenant_id = p_tenant
    UNION ALL
    SELECT q.period, q.period_start, u.charge
      FROM chainworker_spend_unfolded u
     CROSS JOIN LATERAL chainworker_spend_periods(u.charged_at) q
     WHERE u.tenant_id = p_tenant AND u.charge <> 0
$$;
COMMENT ON FUNCTION chainworker_spend_spent(uuid) IS
    'A tenant''s spending per period (day, week, month): chainworker_spend_totals plus the '
    'current transaction''s charges not yet folded into them.';

-- What a tenant's settled attempts released: its released row and, as above, the
-- transaction's own release notes.
CREATE FUNCTION chainworker_spend_released(p_tenant uuid) RETURNS numeric
LANGUAGE sql STABLE AS $$
    SELECT coalesce((SELECT r.lamports FROM chainworker_spend_reservations r
                      WHERE r.tenant_id = p_tenant AND r.side = 'released'), 0)
           + coalesce((SELECT sum(u.release) FROM chainworker_spend_unfolded u
                        WHERE u.tenant_id = p_tenant), 0)
$$;
COMMENT ON FUNCTION chainworker_spend_released(uuid) IS
    'Lamports a tenant''s settled attempts released: chainworker_spend_reservations'' '
    'released row plus the current transaction''s releases not yet folded into it.';


-- 109's reservation, weighing the transaction's own notes with the folded rows.
CREATE OR REPLACE FUNCTION chainworker_spend_reserve(p_amounts bigint[]) RETURNS text[]
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    v_tenant    uuid := current_tenant_id();
    v_limit     spending_limits;
    v_limited   boolean;
    v_reserved  numeric;
    v_released  numeric;
    v_day       numeric;
    v_week      numeric;
    v_month     numeric;
    v_held      numeric;
    v_taken     numeric := 0;
    v_amount    bigint;
    v_reason    text;
    v_reasons   text[] := '{}';
BEGIN
    IF v_tenant IS NULL THEN
        PERFORM chainworker_refuse('the caller''s tenant context is not set');
    ELSIF p_amounts IS NULL OR cardinality(p_amounts) > 10000 THEN
        PERFORM chainworker_refuse('p_amounts must be an array of at most 10000 amounts');
    ELSIF EXISTS (SELECT 1 FROM unnest(p_amounts) a
                   WHERE a IS NULL OR a NOT BETWEEN 0 AND 1000000000000000) THEN
        PERFORM chainworker_refuse('each amount must be from 0 to 10^15 lamports');
    END IF;
    IF cardinality(p_amounts) = 0 THEN
        RETURN v_reasons;
    END IF;

    -- The tenant's queue: one signer at a time weighs and reserves.
    SELECT r.lamports INTO v_reserved FROM chainworker_spend_reservations r
     WHERE r.tenant_id = v_tenant AND r.side = 'reserved' FOR UPDATE;
    IF NOT FOUND THEN
        INSERT INTO chainworker_spend_reservations (tenant_id, side)
        VALUES (v_tenant, 'reserved'), (v_tenant, 'released')
        ON CONFLICT DO NOTHING;
        SELECT r.lamports INTO v_reserved FROM chainworker_spend_reservations r
         WHERE r.tenant_id = v_tenant AND r.side = 'reserved' FOR UPDATE;
    END IF;

    SELECT * INTO v_limit FROM spending_limits l
     WHERE l.tenant_id = v_tenant AND l.user_id IS NULL AND l.currency = 'LAM' AND l.is_active;
    v_limited := FOUND;
    -- Read after the lock, in one statement: a settlement releases and charges in one
    -- transaction, and both are seen or neither; with this transaction's own notes.
    SELECT chainworker_spend_released(v_tenant),
           coalesce(sum(t.spent) FILTER (WHERE t.period = 'day'), 0),
           coalesce(sum(t.spent) FILTER (WHERE t.period = 'week'), 0),
           coalesce(sum(t.spent) FILTER (WHERE t.period = 'month'), 0)
      INTO v_released, v_day, v_week, v_month
      FROM chainworker_spend_periods(now()) p
      LEFT JOIN chainworker_spend_spent(v_tenant) t
             ON t.period = p.period AND t.period_start = p.period_start;
    v_held := greatest(v_reserved - v_released, 0);

    FOREACH v_amount IN ARRAY p_amounts LOOP
        v_reason := CASE
            WHEN NOT v_limited THEN NULL
            WHEN v_amount > v_limit.per_transaction_limit THEN
                format('per-transaction limit: %s lamports > %s', v_amount,
                       v_limit.per_transaction_limit)
            WHEN v_day + v_held + v_taken + v_amount > v_limit.daily_limit THEN
                format('daily limit: %s + %s lamports > %s', v_day + v_held + v_taken,
                       v_amount, v_limit.daily_limit)
            WHEN v_week + v_held + v_taken + v_amount > v_limit.weekly_limit THEN
                format('weekly limit: %s + %s lamports > %s', v_week + v_held + v_taken,
                       v_amount, v_limit.weekly_limit)
            WHEN v_month + v_held + v_taken + v_amount > v_limit.monthly_limit THEN
                format('monthly limit: %s + %s lamports > %s', v_month + v_held + v_taken,
                       v_amount, v_limit.monthly_limit)
        END;
        IF v_reason IS NULL THEN
            v_taken := v_taken + v_amount;
        ELSIF v_held + v_taken > 0 AND v_reason NOT LIKE 'per-transaction%' THEN
            v_reason := v_reason || format(' (%s of it in flight)', v_held + v_taken);
        END IF;
        v_reasons := v_reasons || v_reason;
    END LOOP;

    IF v_taken > 0 THEN
        UPDATE chainworker_spend_reservations SET lamports = lamports + v_taken
         WHERE tenant_id = v_tenant AND side = 'reserved';
    END IF;
    RETURN v_reasons;
END;
$$;
COMMENT ON FUNCTION chainworker_spend_reserve(bigint[]) IS
    'For each amount (lamports), in order: why spending it would pass the current tenant''s '
    'chain limits (spent this day/week/month + in flight + the amounts before it that fit), '
    'or NULL when it fits, and then it is reserved until the attempt recorded with it settles. '
    'Concurrent callers of one tenant queue on its reservation row.';



-- 109's refusals for workers of earlier releases, through the same reading.
CREATE OR REPLACE FUNCTION chainworker_spend_refusals(p_amounts bigint[]) RETURNS text[]
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_limit   spending_limits;
    v_day     numeric;
    v_week    numeric;
    v_month   numeric;
    v_amount  bigint;
    v_reasons text[] := '{}';
BEGIN
    SELECT * INTO v_limit FROM spending_limits
     WHERE tenant_id = current_tenant_id() AND user_id IS NULL AND currency = 'LAM'
       AND is_active;
    IF NOT FOUND THEN
        RETURN array_fill(NULL::text, ARRAY[coalesce(cardinality(p_amounts), 0)]);
    END IF;
    SELECT coalesce(sum(t.spent) FILTER (WHERE t.period = 'day'), 0) + h.held,
           coalesce(sum(t.spent) FILTER (WHERE t.period = 'week'), 0) + h.held,
           coalesce(sum(t.spent) FILTER (WHERE t.period = 'month'), 0) + h.held
      INTO v_day, v_week, v_month
      FROM chainworker_spend_periods(now()) p
      LEFT JOIN chainworker_spend_spent(current_tenant_id()) t
             ON t.period = p.period AND t.period_start = p.period_start
     CROSS JOIN (SELECT greatest(coalesce(sum(r.lamports), 0)
                                 - chainworker_spend_released(current_tenant_id()), 0) AS held
                   FROM chainworker_spend_reservations r
                  WHERE r.tenant_id = current_tenant_id() AND r.side = 'reserved') h
     GROUP BY h.held;
    FOREACH v_amount IN ARRAY coalesce(p_amounts, '{}') LOOP
        v_reasons := v_reasons || CASE
            WHEN v_amount > v_limit.per_transaction_limit THEN
                format('per-transaction limit: %s lamports > %s', v_amount,
                       v_limit.per_transaction_limit)
            WHEN v_day + v_amount > v_limit.daily_limit THEN
                format('daily limit: %s + %s lamports > %s', v_day, v_amount,
                       v_limit.daily_limit)
            WHEN v_week + v_amount > v_limit.weekly_limit THEN
                format('weekly limit: %s + %s lamports > %s', v_week, v_amount,
                       v_limit.weekly_limit)
            WHEN v_month + v_amount > v_limit.monthly_limit THEN
                format('monthly limit: %s + %s lamports > %s', v_month, v_amount,
                       v_limit.monthly_limit)
        END;
    END LOOP;
    RETURN v_reasons;
END;
$$;

REVOKE ALL ON FUNCTION chainworker_spend_fold() FROM PUBLIC, chainworker_app;
-- The runtime role reads its tenant's notes (it writes none), as it reads the totals.
GRANT SELECT ON chainworker_spend_unfolded TO chainworker_app;
