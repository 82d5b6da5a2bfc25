-- Chain spending limits hold under load, at a cost that does not grow with history.
--
-- 1. Running totals. chainworker_spend_totals keeps what each tenant spent (fees and rent,
--    tenant-wide LAM rows of spending_transactions) per calendar period in UTC: the day,
--    the ISO week (from Monday) and the month. They replace the rolling 1/7/30-day sums
--    over spending_transactions: a check reads three rows, however long the history. A
--    trigger on spending_transactions keeps them, so every charge counts, whoever writes it.
-- 2. Reservations. An attempt's estimated fees and rent are reserved when it is signed
--    (chainworker_spend_reserve), in the same transaction that records it, and weighed with
--    what is spent and what other attempts hold in flight: a group of requests is weighed
--    cumulatively, and concurrent signers of one tenant queue on its reservation row, so
--    together they never pass a limit. The attempt's row keeps what it reserved
--    (metadata.spend_reserved, beside estimated_lamports and estimated_rent).
-- 3. Settlement. A trigger on pending_transactions releases the reservation when an attempt
--    stops being live and charges what it paid: fee and rent when it confirmed, the fee
--    only when it landed with an error (no account was created), nothing when it was
--    replaced or expired. The charge is a spending_transactions row, which moves the totals.
--
-- What is in flight is weighed against every period: an attempt signed before midnight may
-- land after it, and is then charged to the new day. So a tenant's in-flight amount is one
-- figure (chainworker_spend_reservations: lamports ever reserved, and ever released, in two
-- rows), not a part of each period's total. Signing adds to one row and settling to the
-- other, so neither waits for the other's row lock; a signer holds ticket locks when it
-- reserves, and a settlement goes on to update tickets after it releases.
--
-- Workers of an earlier release charge landed attempts themselves: stop them before this
-- migration, or the attempts they settle afterwards are charged twice.

CREATE TABLE chainworker_spend_totals (
    tenant_id     uuid NOT NULL,
    period        text NOT NULL,
    period_start  date NOT NULL,
    spent         numeric(20, 2) NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, period, period_start),
    CONSTRAINT chk_spend_totals_period CHECK (period IN ('day', 'week', 'month'))
);
COMMENT ON TABLE chainworker_spend_totals IS
    'Lamports each tenant spent on chain (tenant-wide LAM spending_transactions) per calendar '
    'period in UTC: day, ISO week (from Monday), month. Kept by a trigger on '
    'spending_transactions.';

CREATE TABLE chainworker_spend_reservations (
    tenant_id   uuid NOT NULL,
    side        text NOT NULL,
    lamports    numeric(30, 2) NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, side),
    CONSTRAINT chk_spend_reservations_side CHECK (side IN ('reserved', 'released')),
    CONSTRAINT chk_spend_reservations_lamports CHECK (lamports >= 0)
);
COMMENT ON TABLE chainworker_spend_reservations IS
    'Lamports a tenant ever reserved for attempts when signing them (side reserved) and ever '
    'released when they settled (side released): the difference is in flight. Two rows, so '
    'that signing and settling never wait for each other.';

SELECT enable_tenant_isolation('chainworker_spend_totals');
SELECT enable_tenant_isolation('chainworker_spend_reservations');
-- Written only through the functions below; the runtime role reads its tenant's rows.
GRANT SELECT ON chainworker_spend_totals, chainworker_spend_reservations TO chainworker_app;


-- The calendar periods (UTC) a moment falls in.
CREATE FUNCTION chainworker_spend_periods(p_at timestamptz)
RETURNS TABLE (period text, period_start date)
LANGUAGE sql IMMUTABLE AS $$
    VALUES ('day', (p_at AT TIME ZONE 'UTC')::date),
           ('week', date_trunc('week', p_at AT TIME ZONE 'UTC')::date),
           ('month', date_trunc('month', p_at AT TIME ZONE 'UTC')::date)
$$;
COMMENT ON FUNCTION chainworker_spend_periods(timestamptz) IS
    'The day, ISO week and month (UTC) p_at falls in: the periods of chainworker_spend_totals.';

-- A lamport amount from an attempt's metadata; 0 when absent or not a number, so that a
-- row someone wrote badly never stops its settlement.
CREATE FUNCTION chainworker_lamports(p_value jsonb) RETURNS numeric
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN jsonb_typeof(p_value) = 'number'
                THEN least(greatest(p_value::numeric, 0), 1e15) ELSE 0 END
$$;

-- What an attempt in this status has paid: fee and rent once confirmed, the fee alone when
-- it landed with an error; nothing live, replaced or expired.
CREATE FUNCTION chainworker_attempt_paid(p_status text, p_metadata jsonb) RETURNS numeric
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE p_status
        WHEN 'confirmed' THEN chainworker_lamports(p_metadata->'estimated_lamports')
        WHEN 'failed' THEN greatest(chainworker_lamports(p_metadata->'estimated_lamports')
                                    - chainworker_lamports(p_metadata->'estimated_rent'), 0)
        ELSE 0 END
$$;


-- 1 ------------------------------------------------------------------------------------
CREATE FUNCTION chainworker_spend_count() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    -- Rows in key order: concurrent charges of one tenant lock its totals in one order.
    INSERT INTO chainworker_spend_totals AS t (tenant_id, period, period_start, spent)
    SELECT a.tenant_id, p.period, p.period_start, sum(a.amount)
      FROM added a
     CROSS JOIN LATERAL chainworker_spend_periods(a.created_at) p
     WHERE a.user_id IS NULL AND a.currency = 'LAM'
     GROUP BY a.tenant_id, p.period, p.period_start
     ORDER BY a.tenant_id, p.period, p.period_start
    ON CONFLICT (tenant_id, period, period_start) DO UPDATE SET spent = t.spent + EXCLUDED.spent;
    RETURN NULL;
END;
$$;
COMMENT ON FUNCTION chainworker_spend_count() IS
    'AFTER INSERT statement trigger on spending_transactions: adds tenant-wide LAM charges to '
    'the day, week and month totals of their created_at.';

-- Backfill under a lock that keeps charges out until the trigger exists (at commit).
LOCK TABLE spending_transactions IN SHARE MODE;
INSERT INTO chainworker_spend_totals (tenant_id, period, period_start, spent)
SELECT s.tenant_id, p.period, p.period_start, sum(s.amount)
  FROM spending_transactions s
 CROSS JOIN LATERAL chainworker_spend_periods(s.created_at) p
 WHERE s.user_id IS NULL AND s.currency = 'LAM'
 GROUP BY s.tenant_id, p.period, p.period_start;

CREATE TRIGGER trg_spending_transactions_totals AFTER INSERT ON spending_transactions
    REFERENCING NEW TABLE AS added
    FOR EACH STATEMENT EXECUTE FUNCTION chainworker_spend_count();


-- 2 ------------------------------------------------------------------------------------
-- For each amount, in order: why spending it would pass the current tenant's limits, or
-- NULL when it fits, in which case it is reserved. Each amount is weighed with what the
-- tenant spent this day, week and month, what is in flight, and the amounts before it that
-- fit. The caller records the attempts that fit in the same transaction, with what each
-- reserved; a reservation is released when its attempt settles (section 3).
CREATE FUNCTION chainworker_spend_reserve(p_amounts bigint[]) RETURNS text[]
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
    -- transaction, and both are seen or neither.
    SELECT coalesce((SELECT r.lamports FROM chainworker_spend_reservations r
                      WHERE r.tenant_id = v_tenant AND r.side = 'released'), 0),
           coalesce(sum(t.spent) FILTER (WHERE t.period = 'day'), 0),
           coalesce(sum(t.spent) FILTER (WHERE t.period = 'week'), 0),
           coalesce(sum(t.spent) FILTER (WHERE t.period = 'month'), 0)
      INTO v_released, v_day, v_week, v_month
      FROM chainworker_spend_periods(now()) p
      LEFT JOIN chainworker_spend_totals t
             ON t.tenant_id = v_tenant AND t.period = p.period
            AND t.period_start = p.period_start;
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

REVOKE ALL ON FUNCTION chainworker_spend_reserve(bigint[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION chainworker_spend_reserve(bigint[]) TO chainworker_app;

-- 105's refusals, kept for workers of the previous release: the same answers from the
-- totals (each amount on its own, nothing reserved).
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
      LEFT JOIN chainworker_spend_totals t
             ON t.tenant_id = current_tenant_id() AND t.period = p.period
            AND t.period_start = p.period_start
     CROSS JOIN (SELECT greatest(coalesce(sum(r.lamports) FILTER (WHERE r.side = 'reserved'), 0)
                                 - coalesce(sum(r.lamports) FILTER (WHERE r.side = 'released'), 0),
                                 0) AS held
                   FROM chainworker_spend_reservations r
                  WHERE r.tenant_id = current_tenant_id()) h
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
COMMENT ON FUNCTION chainworker_spend_refusals(bigint[]) IS
    'For each amount (lamports), why spending it would pass the current tenant''s chain '
    'spending limits, or NULL when it fits; each amount weighed on its own, nothing reserved '
    '(signing reserves through chainworker_spend_reserve).';


-- 3 ------------------------------------------------------------------------------------
CREATE FUNCTION chainworker_spend_settle() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    v_release numeric := chainworker_lamports(OLD.metadata->'spend_reserved');
    v_charge  numeric := chainworker_attempt_paid(NEW.status, NEW.metadata)
                         - chainworker_attempt_paid(OLD.status, OLD.metadata);
BEGIN
    IF OLD.status IN ('pending', 'confirming') AND NEW.status NOT IN ('pending', 'confirming')
       AND v_release > 0 THEN
        -- Never more than is in flight: whatever wrote the row, the others stay held.
        UPDATE chainworker_spend_reservations AS f
           SET lamports = f.lamports + least(v_release, greatest(r.lamports - f.lamports, 0))
          FROM chainworker_spend_reservations AS r
         WHERE f.tenant_id = NEW.tenant_id AND f.side = 'released'
           AND r.tenant_id = NEW.tenant_id AND r.side = 'reserved';
    ELSIF v_charge > 0 THEN
        -- Settlements lock the released row before the totals, whether they release or
        -- not (an attempt signed before its tenant had a limit reserved nothing), so two
        -- of one tenant never wait for each other's locks in opposite orders.
        PERFORM 1 FROM chainworker_spend_reservations AS f
          WHERE f.tenant_id = NEW.tenant_id AND f.side = 'released' FOR UPDATE;
    END IF;
    IF v_charge > 0 THEN
        INSERT INTO spending_transactions
               (tenant_id, user_id, amount, currency, reference_type, reference_id, created_at)
        VALUES (NEW.tenant_id, NULL, v_charge, 'LAM', 'pending_transaction', NEW.id, now());
    END IF;
    RETURN NULL;
END;
$$;
COMMENT ON FUNCTION chainworker_spend_settle() IS
    'AFTER UPDATE OF status trigger on pending_transactions: an attempt that stops being live '
    'releases what it reserved; a status that paid more than the last one (confirmed: fee and '
    'rent; failed: the fee) charges the difference to the tenant in spending_transactions.';

CREATE TRIGGER trg_pending_transactions_spend AFTER UPDATE OF status ON pending_transactions
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION chainworker_spend_settle();

-- What an attempt costs and reserved is fixed when it is recorded: settlement releases and
-- charges exactly that.
CREATE FUNCTION chainworker_spend_fixed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'an attempt''s estimated cost and reservation cannot change'
        USING ERRCODE = 'integrity_constraint_violation';
END;
$$;

CREATE TRIGGER trg_pending_transactions_spend_fixed BEFORE UPDATE OF metadata
    ON pending_transactions FOR EACH ROW
    WHEN (OLD.metadata->'spend_reserved' IS DISTINCT FROM NEW.metadata->'spend_reserved'
          OR OLD.metadata->'estimated_lamports' IS DISTINCT FROM NEW.metadata->'estimated_lamports'
          OR OLD.metadata->'estimated_rent' IS DISTINCT FROM NEW.metadata->'estimated_rent')
    EXECUTE FUNCTION chainworker_spend_fixed();

-- Trigger functions: they run as triggers whoever may call them; nobody calls them.
REVOKE ALL ON FUNCTION chainworker_spend_count() FROM PUBLIC, chainworker_app;
REVOKE ALL ON FUNCTION chainworker_spend_settle() FROM PUBLIC, chainworker_app;
REVOKE ALL ON FUNCTION chainworker_spend_fixed() FROM PUBLIC, chainworker_app;


-- The gauge (migration 100) from the totals: spent this period and in flight, over the limit.
CREATE OR REPLACE FUNCTION chainworker_spend_utilization()
RETURNS TABLE (period text, ratio double precision)
LANGUAGE sql SECURITY DEFINER SET search_path = public, pg_temp AS $$
    WITH used AS (
        SELECT l.daily_limit, l.weekly_limit, l.monthly_limit,
               coalesce(sum(t.spent) FILTER (WHERE t.period = 'day'), 0) + h.held AS day,
               coalesce(sum(t.spent) FILTER (WHERE t.period = 'week'), 0) + h.held AS week,
               coalesce(sum(t.spent) FILTER (WHERE t.period = 'month'), 0) + h.held AS month
          FROM spending_limits l
         CROSS JOIN chainworker_spend_periods(now()) p
          LEFT JOIN chainworker_spend_totals t
                 ON t.tenant_id = l.tenant_id AND t.period = p.period
                AND t.period_start = p.period_start
         CROSS JOIN LATERAL (
                SELECT greatest(coalesce(sum(r.lamports) FILTER (WHERE r.side = 'reserved'), 0)
                                - coalesce(sum(r.lamports) FILTER (WHERE r.side = 'released'),
                                           0), 0) AS held
                  FROM chainworker_spend_reservations r
                 WHERE r.tenant_id = l.tenant_id) h
         WHERE l.user_id IS NULL AND l.currency = 'LAM' AND l.is_active
         GROUP BY l.id, l.daily_limit, l.weekly_limit, l.monthly_limit, h.held)
    SELECT 'daily', coalesce(max(day / nullif(daily_limit, 0)), 0)::double precision FROM used
    UNION ALL
    SELECT 'weekly', coalesce(max(week / nullif(weekly_limit, 0)), 0)::double precision FROM used
    UNION ALL
    SELECT 'monthly', coalesce(max(month / nullif(monthly_limit, 0)), 0)::double precision
      FROM used
$$;
