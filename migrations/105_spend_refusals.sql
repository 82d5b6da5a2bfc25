-- The worker records concurrent requests together (group commit) and weighs each one
-- against its tenant's spending limits. chainworker_spend_refusals does that for many
-- amounts with one read of the limit and one sum over the last 30 days, where calling
-- chainworker_spend_refusal once per amount summed the same rows again for each.
-- Each amount is weighed on its own (as if it were the only one in flight); the
-- reasons read exactly as chainworker_spend_refusal's, which now calls this.

CREATE FUNCTION chainworker_spend_refusals(p_amounts bigint[]) RETURNS text[]
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
    SELECT coalesce(sum(amount) FILTER (WHERE created_at >= now() - interval '1 day'), 0),
           coalesce(sum(amount) FILTER (WHERE created_at >= now() - interval '7 days'), 0),
           coalesce(sum(amount), 0)
      INTO v_day, v_week, v_month
      FROM spending_transactions
     WHERE tenant_id = current_tenant_id() AND user_id IS NULL AND currency = 'LAM'
       AND created_at >= now() - interval '30 days';
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
    'spending limits, or NULL when it fits; each amount weighed on its own.';

CREATE OR REPLACE FUNCTION chainworker_spend_refusal(p_amount bigint) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT (chainworker_spend_refusals(ARRAY[p_amount]))[1]
$$;
