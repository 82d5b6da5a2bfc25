-- chainworker's own tables on top of the shared ticket schema.
--
-- chain_requests: what the ticket service asked for (mint / transfer / burn),
-- recorded before it is queued. Postgres is the truth; Redis only delivers.
-- wallets: a user's registered external address (else a custodial one is derived).
-- pending_transactions gains the confirmation loop's lease and expiry marker.

CREATE TABLE chain_requests (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id        uuid NOT NULL,
    ticket_id        uuid NOT NULL,
    transfer_id      uuid,
    operation        text NOT NULL,
    reason           text,
    source           text NOT NULL DEFAULT 'api',
    status           text NOT NULL DEFAULT 'queued',
    attempts         integer NOT NULL DEFAULT 0,
    outcome_code     text,
    outcome_message  text,
    token_mint       text,
    tx_signature     text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    enqueued_at      timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    completed_at     timestamptz,
    CONSTRAINT chk_chain_requests_operation CHECK (operation IN ('mint', 'transfer', 'burn')),
    CONSTRAINT chk_chain_requests_status CHECK (
        status IN ('queued', 'submitted', 'confirmed', 'failed', 'expired', 'refused', 'abandoned')
    ),
    CONSTRAINT chk_chain_requests_reason CHECK (
        (operation = 'burn' AND reason IN ('revoke', 'refund'))
        OR (operation <> 'burn' AND reason IS NULL)
    ),
    CONSTRAINT chk_chain_requests_transfer CHECK ((operation = 'transfer') = (transfer_id IS NOT NULL)),
    CONSTRAINT chk_chain_requests_source CHECK (
        source IN ('api', 'cli', 'client', 'outbox', 'multisig', 'reconcile', 'demo')
    ),
    CONSTRAINT chk_chain_requests_attempts CHECK (attempts >= 0),
    CONSTRAINT chk_chain_requests_completed CHECK (
        (status IN ('queued', 'submitted')) = (completed_at IS NULL)
    )
);

COMMENT ON TABLE chain_requests IS
    'A mint/transfer/burn asked of chainworker. Live while queued or submitted; '
    'at most one live request per (tenant, ticket, operation).';

-- Duplicates collapse: asking again while one is live finds the live one.
CREATE UNIQUE INDEX uq_chain_requests_live
    ON chain_requests (tenant_id, ticket_id, operation)
    WHERE status IN ('queued', 'submitted');
CREATE INDEX idx_chain_requests_queued ON chain_requests (enqueued_at) WHERE status = 'queued';
CREATE INDEX idx_chain_requests_ticket ON chain_requests (tenant_id, ticket_id, created_at DESC);

SELECT enable_tenant_isolation('chain_requests');


CREATE TABLE wallets (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id   uuid NOT NULL,
    user_id     uuid NOT NULL,
    address     text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT uq_wallets_user UNIQUE (tenant_id, user_id),
    -- base58 of 32 bytes: 32 to 44 characters of the Bitcoin alphabet.
    CONSTRAINT chk_wallets_address CHECK (address ~ '^[1-9A-HJ-NP-Za-km-z]{32,44}$')
);

COMMENT ON TABLE wallets IS
    'A user''s registered external wallet. Users without one hold tickets in a custodial '
    'address derived from a secret and (tenant_id, user_id).';

SELECT enable_tenant_isolation('wallets');


ALTER TABLE pending_transactions
    ADD COLUMN lease_owner text,
    ADD COLUMN lease_until timestamptz,
    ADD COLUMN last_rebroadcast_at timestamptz,
    ADD COLUMN expiry_check_pending boolean NOT NULL DEFAULT false;


-- The one narrow cross-tenant path: the confirmation loop claims live attempts of
-- every tenant under a lease. It returns only what the loop needs to read the chain;
-- all writes happen afterwards inside a tenant-scoped transaction. Rows whose lease is
-- oldest come first, so with more live rows than one claim takes, every row still
-- gets its turn.
CREATE FUNCTION chainworker_claim_live_transactions(
    p_worker text, p_limit integer, p_lease_seconds integer
) RETURNS TABLE (
    id uuid, tenant_id uuid, ticket_id uuid, request_id uuid, tx_type text, tx_signature text,
    status text, attempt integer, last_valid_block_height bigint, serialized_tx bytea,
    submitted_at timestamptz, last_sent_at timestamptz, last_rebroadcast_at timestamptz,
    expiry_check_pending boolean
)
LANGUAGE sql SECURITY DEFINER SET search_path = public, pg_temp AS $$
    UPDATE pending_transactions AS p
       SET lease_owner = p_worker,
           lease_until = now() + make_interval(secs => p_lease_seconds)
     WHERE p.id IN (
            SELECT c.id FROM pending_transactions c
             WHERE c.status IN ('pending', 'confirming')
               AND (c.lease_until IS NULL OR c.lease_until < now() OR c.lease_owner = p_worker)
             ORDER BY c.lease_until NULLS FIRST, c.submitted_at
             LIMIT p_limit
             FOR UPDATE SKIP LOCKED)
    RETURNING p.id, p.tenant_id, p.ticket_id, p.request_id, p.tx_type::text, p.tx_signature,
              p.status::text, p.attempt, p.last_valid_block_height, p.serialized_tx,
              p.submitted_at, p.last_sent_at, p.last_rebroadcast_at, p.expiry_check_pending
$$;

-- The sweeper's path: queued requests with no live transaction and no outcome,
-- older than the grace period (their job was lost: Redis restart, killed worker).
-- Claiming restamps enqueued_at, so two sweepers do not enqueue the same request.
CREATE FUNCTION chainworker_stale_requests(p_grace_seconds double precision, p_limit integer)
RETURNS TABLE (id uuid, tenant_id uuid, operation text)
LANGUAGE sql SECURITY DEFINER SET search_path = public, pg_temp AS $$
    UPDATE chain_requests AS r
       SET enqueued_at = now()
     WHERE r.id IN (
            SELECT s.id FROM chain_requests s
             WHERE s.status = 'queued'
               AND s.enqueued_at < now() - make_interval(secs => p_grace_seconds)
             ORDER BY s.enqueued_at
             LIMIT p_limit
             FOR UPDATE SKIP LOCKED)
    RETURNING r.id, r.tenant_id, r.operation
$$;

-- Numbers for the dashboards (no ids leave this function).
CREATE FUNCTION chainworker_live_summary()
RETURNS TABLE (status text, live_count bigint, oldest_seconds double precision)
LANGUAGE sql SECURITY DEFINER SET search_path = public, pg_temp AS $$
    SELECT p.status, count(*),
           coalesce(extract(epoch FROM now() - min(p.submitted_at)), 0)::double precision
      FROM pending_transactions p
     WHERE p.status IN ('pending', 'confirming')
     GROUP BY p.status
$$;

CREATE FUNCTION chainworker_backlog()
RETURNS TABLE (queued_requests bigint, outbox_unprocessed bigint)
LANGUAGE sql SECURITY DEFINER SET search_path = public, pg_temp AS $$
    SELECT (SELECT count(*) FROM chain_requests WHERE status = 'queued'),
           -- the relay's backlog only: chainworker's own ticket.* events are for others
           (SELECT count(*) FROM outbox
             WHERE processed_at IS NULL
               AND event_type IN ('nft.mint_requested', 'nft.transfer_requested',
                                  'nft.burn_requested'))
$$;

-- The highest share of a chain spending limit any tenant has used, per period.
CREATE FUNCTION chainworker_spend_utilization()
RETURNS TABLE (period text, ratio double precision)
LANGUAGE sql SECURITY DEFINER SET search_path = public, pg_temp AS $$
    WITH spent AS (
        SELECT l.daily_limit, l.weekly_limit, l.monthly_limit,
               coalesce(sum(s.amount) FILTER (WHERE s.created_at >= now() - interval '1 day'), 0)
                   AS day,
               coalesce(sum(s.amount) FILTER (WHERE s.created_at >= now() - interval '7 days'), 0)
                   AS week,
               coalesce(sum(s.amount), 0) AS month
          FROM spending_limits l
          LEFT JOIN spending_transactions s
                 ON s.tenant_id = l.tenant_id AND s.user_id IS NULL AND s.currency = 'LAM'
                AND s.created_at >= now() - interval '30 days'
         WHERE l.user_id IS NULL AND l.currency = 'LAM' AND l.is_active
         GROUP BY l.id, l.daily_limit, l.weekly_limit, l.monthly_limit)
    SELECT 'daily', coalesce(max(day / nullif(daily_limit, 0)), 0)::double precision FROM spent
    UNION ALL
    SELECT 'weekly', coalesce(max(week / nullif(weekly_limit, 0)), 0)::double precision FROM spent
    UNION ALL
    SELECT 'monthly', coalesce(max(month / nullif(monthly_limit, 0)), 0)::double precision
      FROM spent
$$;

REVOKE ALL ON FUNCTION chainworker_claim_live_transactions(text, integer, integer) FROM PUBLIC;
REVOKE ALL ON FUNCTION chainworker_stale_requests(double precision, integer) FROM PUBLIC;
REVOKE ALL ON FUNCTION chainworker_live_summary() FROM PUBLIC;
REVOKE ALL ON FUNCTION chainworker_backlog() FROM PUBLIC;
REVOKE ALL ON FUNCTION chainworker_spend_utilization() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION chainworker_claim_live_transactions(text, integer, integer) TO chainworker_app;
GRANT EXECUTE ON FUNCTION chainworker_stale_requests(double precision, integer) TO chainworker_app;
GRANT EXECUTE ON FUNCTION chainworker_live_summary() TO chainworker_app;
GRANT EXECUTE ON FUNCTION chainworker_backlog() TO chainworker_app;
GRANT EXECUTE ON FUNCTION chainworker_spend_utilization() TO chainworker_app;


-- Chain spending: fees and rent a tenant pays, in lamports (currency 'LAM'), against
-- tenant-wide limits. A spending_limits / spending_transactions row with no user_id
-- is the tenant's own (the seed's rows are per user). Lamports need wider amounts.
ALTER TABLE spending_limits ALTER COLUMN user_id DROP NOT NULL;
ALTER TABLE spending_transactions ALTER COLUMN user_id DROP NOT NULL;
ALTER TABLE spending_limits
    ALTER COLUMN per_transaction_limit TYPE numeric(20, 2),
    ALTER COLUMN daily_limit TYPE numeric(20, 2),
    ALTER COLUMN weekly_limit TYPE numeric(20, 2),
    ALTER COLUMN monthly_limit TYPE numeric(20, 2);
ALTER TABLE spending_transactions ALTER COLUMN amount TYPE numeric(20, 2);
CREATE UNIQUE INDEX uq_spending_limits_tenant_chain
    ON spending_limits (tenant_id) WHERE user_id IS NULL AND currency = 'LAM' AND is_active;

-- Why spending p_amount more lamports would pass the current tenant's chain limits;
-- NULL when it fits or the tenant has no limits.
CREATE FUNCTION chainworker_spend_refusal(p_amount bigint) RETURNS text
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_limit spending_limits;
    v_day numeric;
    v_week numeric;
    v_month numeric;
BEGIN
    SELECT * INTO v_limit FROM spending_limits
     WHERE tenant_id = current_tenant_id() AND user_id IS NULL AND currency = 'LAM'
       AND is_active;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    IF p_amount > v_limit.per_transaction_limit THEN
        RETURN format('per-transaction limit: %s lamports > %s', p_amount,
                      v_limit.per_transaction_limit);
    END IF;
    SELECT coalesce(sum(amount) FILTER (WHERE created_at >= now() - interval '1 day'), 0),
           coalesce(sum(amount) FILTER (WHERE created_at >= now() - interval '7 days'), 0),
           coalesce(sum(amount), 0)
      INTO v_day, v_week, v_month
      FROM spending_transactions
     WHERE tenant_id = current_tenant_id() AND user_id IS NULL AND currency = 'LAM'
       AND created_at >= now() - interval '30 days';
    IF v_day + p_amount > v_limit.daily_limit THEN
        RETURN format('daily limit: %s + %s lamports > %s', v_day, p_amount, v_limit.daily_limit);
    ELSIF v_week + p_amount > v_limit.weekly_limit THEN
        RETURN format('weekly limit: %s + %s lamports > %s', v_week, p_amount,
                      v_limit.weekly_limit);
    ELSIF v_month + p_amount > v_limit.monthly_limit THEN
        RETURN format('monthly limit: %s + %s lamports > %s', v_month, p_amount,
                      v_limit.monthly_limit);
    END IF;
    RETURN NULL;
END;
$$;
