-- The runtime role stays inside its tenant.
--
-- 1. tenants gets row-level security (a tenant sees its own row) and chainworker_app
--    may not write it.
-- 2. chainworker_app gets the least it needs, table by table: read what chainworker
--    reads, write what it writes; audit tables are append-only; the ticket service's
--    other tables are not its business. Tables of later migrations get nothing unless
--    that migration grants it.
-- 3. Every SECURITY DEFINER function refuses NULL and out-of-range arguments. The
--    reconcile reads that returned every tenant's rows for a NULL tenant are gone: the
--    commands read each tenant under its own context (RLS), and the one cross-tenant
--    read left is the list of tenant ids to go through.
-- 4. Cross-tenant lookups are recorded at most CROSS_TENANT_PER_MINUTE times per token
--    and minute (the API records them off the request path).
-- (The API's one statement compares tenants explicitly since migration 107.)

-- 1 ------------------------------------------------------------------------------------
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_class c
                WHERE c.oid = to_regclass('tenants') AND c.relowner = current_user::regrole)
    THEN
        ALTER TABLE tenants ENABLE ROW LEVEL SECURITY;
        CREATE POLICY tenants_own_row ON tenants FOR SELECT
            USING (id = NULLIF(current_setting('app.current_tenant_id', true), '')::uuid);
    END IF;
END;
$$;

-- 2 ------------------------------------------------------------------------------------
DO $$
DECLARE
    v_grant record;
    v_table record;
BEGIN
    FOR v_table IN
        SELECT c.relname FROM pg_class c
         WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind IN ('r', 'p', 'v')
           AND c.relowner = current_user::regrole
    LOOP
        EXECUTE format('REVOKE ALL ON TABLE %I FROM chainworker_app', v_table.relname);
    END LOOP;
    FOR v_grant IN
        SELECT * FROM (VALUES
            -- what the pipeline reads and settles
            ('tickets', 'SELECT, UPDATE'),
            ('ticket_transfers', 'SELECT, UPDATE'),
            ('events', 'SELECT'),
            ('venues', 'SELECT'),  -- the tickets_venue_owner_view policy reads it
            ('users', 'SELECT'),
            ('tenants', 'SELECT'),
            ('chain_requests', 'SELECT, INSERT, UPDATE'),
            ('pending_transactions', 'SELECT, INSERT, UPDATE'),
            ('wallets', 'SELECT, INSERT, UPDATE'),
            ('outbox', 'SELECT, INSERT, UPDATE'),
            ('idempotency_keys', 'SELECT, INSERT, UPDATE'),
            ('multisig_approval_requests', 'SELECT, INSERT, UPDATE'),
            ('spending_limits', 'SELECT'),
            ('api_tokens', 'SELECT, INSERT'),
            -- append-only records: written, never changed or removed
            ('blockchain_sync_log', 'SELECT, INSERT'),
            ('ticket_state_history', 'SELECT, INSERT'),
            ('spending_transactions', 'SELECT, INSERT'),
            ('multisig_approvals', 'SELECT, INSERT'),
            ('multisig_rejections', 'SELECT, INSERT')
        ) AS g (relname, privileges)
    LOOP
        IF EXISTS (SELECT 1 FROM pg_class c
                    WHERE c.oid = to_regclass(v_grant.relname)
                      AND c.relowner = current_user::regrole) THEN
            EXECUTE format('GRANT %s ON TABLE %I TO chainworker_app', v_grant.privileges,
                           v_grant.relname);
        END IF;
    END LOOP;
END;
$$;
ALTER DEFAULT PRIVILEGES FOR ROLE chainworker_owner
    REVOKE SELECT, INSERT, UPDATE, DELETE ON TABLES FROM chainworker_app;

-- The seed's violation log is written through chainworker_note_cross_tenant (bounded),
-- never directly: the runtime role could otherwise forge or flood it.
REVOKE EXECUTE ON FUNCTION log_tenant_violation(uuid, text, text, jsonb) FROM chainworker_app;

-- 3 ------------------------------------------------------------------------------------
CREATE FUNCTION chainworker_refuse(p_message text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '%', p_message USING ERRCODE = 'invalid_parameter_value';
END;
$$;
COMMENT ON FUNCTION chainworker_refuse(text) IS
    'Raises invalid_parameter_value with the message: how the cross-tenant functions refuse '
    'a NULL or out-of-range argument.';

-- chainworker_claim_live_transactions gets its argument checks in migration 108, with the
-- quarantine it needs.

CREATE OR REPLACE FUNCTION chainworker_stale_requests(
    p_grace_seconds double precision, p_limit integer
) RETURNS TABLE (id uuid, tenant_id uuid, operation text)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    IF p_grace_seconds IS NULL OR p_grace_seconds NOT BETWEEN 0 AND 86400 THEN
        PERFORM chainworker_refuse('p_grace_seconds must be from 0 to 86400');
    ELSIF p_limit IS NULL OR p_limit NOT BETWEEN 1 AND 10000 THEN
        PERFORM chainworker_refuse('p_limit must be from 1 to 10000');
    END IF;
    RETURN QUERY
    UPDATE chain_requests AS r
       SET enqueued_at = now()
     WHERE r.id IN (
            SELECT s.id FROM chain_requests s
             WHERE s.status = 'queued'
               AND s.enqueued_at < now() - make_interval(secs => p_grace_seconds)
             ORDER BY s.enqueued_at
             LIMIT p_limit
             FOR UPDATE SKIP LOCKED)
    RETURNING r.id, r.tenant_id, r.operation;
END;
$$;

CREATE OR REPLACE FUNCTION chainworker_authenticate(p_token_id uuid)
RETURNS TABLE (token_id uuid, tenant_id uuid, is_admin boolean, user_id uuid, token_hash text)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    IF p_token_id IS NULL THEN
        PERFORM chainworker_refuse('p_token_id must not be null');
    END IF;
    RETURN QUERY
    SELECT t.id, t.tenant_id, t.is_admin, t.user_id, t.token_hash
      FROM api_tokens t
     WHERE t.id = p_token_id
       AND t.revoked_at IS NULL
       AND (t.expires_at IS NULL OR t.expires_at > now());
END;
$$;

CREATE OR REPLACE FUNCTION chainworker_claim_outbox_requests(p_limit integer)
RETURNS TABLE (id bigint, tenant_id uuid, aggregate_type text, aggregate_id uuid,
               event_type text, payload jsonb, attempts integer)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    IF p_limit IS NULL OR p_limit NOT BETWEEN 1 AND 10000 THEN
        PERFORM chainworker_refuse('p_limit must be from 1 to 10000');
    END IF;
    RETURN QUERY
    SELECT o.id, o.tenant_id, o.aggregate_type, o.aggregate_id, o.event_type, o.payload,
           o.attempts
      FROM outbox o
     WHERE o.processed_at IS NULL
       AND o.available_at <= now()
       AND o.event_type IN ('nft.mint_requested', 'nft.transfer_requested', 'nft.burn_requested')
     ORDER BY o.available_at, o.id
     LIMIT p_limit
       FOR UPDATE SKIP LOCKED;
END;
$$;

CREATE OR REPLACE FUNCTION chainworker_locate_request(p_request uuid, p_signature text)
RETURNS TABLE (tenant_id uuid, request_id uuid, tx_id uuid)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    IF (p_request IS NULL) = (p_signature IS NULL) THEN
        PERFORM chainworker_refuse('give exactly one of p_request and p_signature');
    ELSIF p_signature IS NOT NULL AND p_signature !~ '^[1-9A-HJ-NP-Za-km-z]{64,88}$' THEN
        PERFORM chainworker_refuse('p_signature must be a base58 signature');
    END IF;
    RETURN QUERY
    SELECT r.tenant_id, r.id, NULL::uuid
      FROM chain_requests r
     WHERE p_request IS NOT NULL AND r.id = p_request
    UNION ALL
    SELECT p.tenant_id, p.request_id, p.id
      FROM pending_transactions p
     WHERE p_signature IS NOT NULL AND p.tx_signature = p_signature
     LIMIT 1;
END;
$$;

-- The reconcile commands read each tenant under its own context; this is the list of
-- tenants to go through: those with chain requests or live transactions, one keyset page
-- at a time (a loose scan of the request index, so it costs one probe per tenant).
DROP FUNCTION chainworker_live_transactions(
    double precision, uuid, text, integer, timestamptz, uuid);
DROP FUNCTION chainworker_minted_tickets(uuid, integer, uuid);

CREATE FUNCTION chainworker_tenant_ids(p_after uuid, p_limit integer)
RETURNS TABLE (tenant_id uuid)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    v_after uuid := coalesce(p_after, '00000000-0000-0000-0000-000000000000'::uuid);
BEGIN
    IF p_limit IS NULL OR p_limit NOT BETWEEN 1 AND 10000 THEN
        PERFORM chainworker_refuse('p_limit must be from 1 to 10000');
    END IF;
    RETURN QUERY
    WITH RECURSIVE requesting AS (
        (SELECT r.tenant_id FROM chain_requests r WHERE r.tenant_id > v_after
          ORDER BY r.tenant_id LIMIT 1)
        UNION ALL
        SELECT (SELECT r.tenant_id FROM chain_requests r WHERE r.tenant_id > q.tenant_id
                 ORDER BY r.tenant_id LIMIT 1)
          FROM requesting q
         WHERE q.tenant_id IS NOT NULL
    ), known AS (
        SELECT q.tenant_id FROM requesting q WHERE q.tenant_id IS NOT NULL
        UNION
        SELECT p.tenant_id FROM pending_transactions p
         WHERE p.status IN ('pending', 'confirming') AND p.tenant_id > v_after
    )
    SELECT k.tenant_id FROM known k ORDER BY k.tenant_id LIMIT p_limit;
END;
$$;
COMMENT ON FUNCTION chainworker_tenant_ids(uuid, integer) IS
    'Tenants with chain requests or live transactions, after p_after, at most p_limit, in id '
    'order: the reconcile commands go through them one by one, each under its own context.';

-- 4 ------------------------------------------------------------------------------------
-- A lookup that found nothing under the caller's tenant: when the object exists under
-- another tenant, record the attempt (with the caller's tenant in context and the token
-- in the details) unless this token already has CROSS_TENANT_PER_MINUTE recorded in the
-- last minute. 'recorded', 'suppressed' (over the bound) or 'none' (nothing there).
DROP FUNCTION chainworker_note_cross_tenant(text, text, text);

CREATE FUNCTION chainworker_note_cross_tenant(
    p_table text, p_key text, p_operation text, p_token uuid
) RETURNS text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    -- CROSS_TENANT_PER_MINUTE
    v_bound constant integer := 20;
    v_owner uuid;
BEGIN
    IF p_table IS NULL OR p_key IS NULL OR p_operation IS NULL OR p_token IS NULL THEN
        PERFORM chainworker_refuse('every argument is required');
    ELSIF current_tenant_id() IS NULL THEN
        PERFORM chainworker_refuse('the caller''s tenant context is not set');
    ELSIF length(p_key) > 100 OR length(p_operation) > 200 THEN
        PERFORM chainworker_refuse('p_key or p_operation is too long');
    END IF;
    IF p_table = 'pending_transactions' THEN
        SELECT p.tenant_id INTO v_owner FROM pending_transactions p WHERE p.tx_signature = p_key;
    ELSIF p_key !~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' THEN
        RETURN 'none';
    ELSIF p_table = 'tickets' THEN
        SELECT t.tenant_id INTO v_owner FROM tickets t WHERE t.id = p_key::uuid;
    ELSIF p_table = 'ticket_transfers' THEN
        SELECT t.tenant_id INTO v_owner FROM ticket_transfers t WHERE t.id = p_key::uuid;
    ELSIF p_table = 'chain_requests' THEN
        SELECT r.tenant_id INTO v_owner FROM chain_requests r WHERE r.id = p_key::uuid;
    ELSIF p_table = 'events' THEN
        SELECT e.tenant_id INTO v_owner FROM events e WHERE e.id = p_key::uuid;
    ELSIF p_table = 'multisig_approval_requests' THEN
        SELECT m.tenant_id INTO v_owner FROM multisig_approval_requests m WHERE m.id = p_key::uuid;
    ELSIF p_table = 'users' THEN
        SELECT u.tenant_id INTO v_owner FROM users u WHERE u.id = p_key::uuid;
    ELSE
        PERFORM chainworker_refuse(format('unsupported table %s', p_table));
    END IF;
    IF v_owner IS NULL OR v_owner = current_tenant_id() THEN
        RETURN 'none';
    END IF;
    IF (SELECT count(*) FROM tenant_access_violations v
         WHERE v.tenant_id = current_tenant_id()
           AND v.created_at > now() - interval '1 minute'
           AND v.details->>'token' = p_token::text) >= v_bound THEN
        RETURN 'suppressed';
    END IF;
    PERFORM log_tenant_violation(v_owner, p_table, p_operation,
                                 jsonb_build_object('key', p_key, 'via', 'api',
                                                    'token', p_token::text));
    RETURN 'recorded';
END;
$$;
COMMENT ON FUNCTION chainworker_note_cross_tenant(text, text, text, uuid) IS
    'After a lookup found nothing under the caller''s tenant: record the attempt when the key '
    'exists under another tenant, at most 20 per token and minute. Returns recorded, '
    'suppressed or none. The other tenant''s id never leaves this function.';

REVOKE ALL ON FUNCTION chainworker_refuse(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION chainworker_tenant_ids(uuid, integer) FROM PUBLIC;
REVOKE ALL ON FUNCTION chainworker_note_cross_tenant(text, text, text, uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION chainworker_refuse(text) TO chainworker_app;
GRANT EXECUTE ON FUNCTION chainworker_tenant_ids(uuid, integer) TO chainworker_app;
GRANT EXECUTE ON FUNCTION chainworker_note_cross_tenant(text, text, text, uuid)
    TO chainworker_app;

-- reconcile's per-tenant scan of live attempts, oldest first
CREATE INDEX idx_pending_tx_tenant_live ON pending_transactions (tenant_id, submitted_at, id)
    WHERE status IN ('pending', 'confirming');
