-- chainworker's API and outbox relay: tokens, and the narrow cross-tenant paths they need.
--
-- api_tokens: one bearer token per calling service, bound to one tenant. Only the
-- sha256 of the secret is stored; the token itself is shown once, at creation.
-- Token text: cwt_<token id, 32 hex>_<secret>. The id finds the row; the secret's
-- hash is compared in constant time by the API.

CREATE TABLE api_tokens (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id   uuid NOT NULL REFERENCES tenants (id),
    name        text NOT NULL,
    is_admin    boolean NOT NULL DEFAULT false,
    -- The user an admin token acts for: multisig votes are recorded against users.
    user_id     uuid REFERENCES users (id),
    token_hash  text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz,
    revoked_at  timestamptz,
    CONSTRAINT chk_api_tokens_name CHECK (length(name) BETWEEN 1 AND 100),
    CONSTRAINT chk_api_tokens_hash CHECK (token_hash ~ '^[0-9a-f]{64}$'),
    CONSTRAINT chk_api_tokens_admin_user CHECK (NOT is_admin OR user_id IS NOT NULL),
    CONSTRAINT chk_api_tokens_expiry CHECK (expires_at IS NULL OR expires_at > created_at)
);

COMMENT ON TABLE api_tokens IS
    'Bearer tokens of the services calling the chainworker API; each is bound to one tenant. '
    'token_hash is sha256(secret) in hex; the secret is never stored.';

CREATE INDEX idx_api_tokens_tenant ON api_tokens (tenant_id, created_at);

SELECT enable_tenant_isolation('api_tokens');


-- Authentication happens before the tenant is known: the one lookup by token id,
-- returning a live token's tenant, role and stored hash (compared by the caller).
CREATE FUNCTION chainworker_authenticate(p_token_id uuid)
RETURNS TABLE (token_id uuid, tenant_id uuid, is_admin boolean, user_id uuid, token_hash text)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
    SELECT t.id, t.tenant_id, t.is_admin, t.user_id, t.token_hash
      FROM api_tokens t
     WHERE t.id = p_token_id
       AND t.revoked_at IS NULL
       AND (t.expires_at IS NULL OR t.expires_at > now())
$$;


-- A lookup that found nothing under the caller's tenant: when the object exists under
-- another tenant, record the attempt (log_tenant_violation, with the caller's tenant in
-- context) and return true. The owner's tenant id never leaves this function.
CREATE FUNCTION chainworker_note_cross_tenant(p_table text, p_key text, p_operation text)
RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    v_owner uuid;
BEGIN
    IF p_table = 'tickets' THEN
        SELECT tenant_id INTO v_owner FROM tickets WHERE id = p_key::uuid;
    ELSIF p_table = 'ticket_transfers' THEN
        SELECT tenant_id INTO v_owner FROM ticket_transfers WHERE id = p_key::uuid;
    ELSIF p_table = 'chain_requests' THEN
        SELECT tenant_id INTO v_owner FROM chain_requests WHERE id = p_key::uuid;
    ELSIF p_table = 'pending_transactions' THEN
        SELECT tenant_id INTO v_owner FROM pending_transactions WHERE tx_signature = p_key;
    ELSIF p_table = 'events' THEN
        SELECT tenant_id INTO v_owner FROM events WHERE id = p_key::uuid;
    ELSIF p_table = 'multisig_approval_requests' THEN
        SELECT tenant_id INTO v_owner FROM multisig_approval_requests WHERE id = p_key::uuid;
    ELSIF p_table = 'users' THEN
        SELECT tenant_id INTO v_owner FROM users WHERE id = p_key::uuid;
    ELSE
        RAISE EXCEPTION 'chainworker_note_cross_tenant: unsupported table %', p_table
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF v_owner IS NULL OR v_owner IS NOT DISTINCT FROM current_tenant_id() THEN
        RETURN false;
    END IF;
    PERFORM log_tenant_violation(v_owner, p_table, p_operation,
                                 jsonb_build_object('key', p_key, 'via', 'api'));
    RETURN true;
END;
$$;


-- The outbox relay's path: claim requests the ticket service wrote to the outbox, of
-- every tenant. Only the three nft.*_requested event types; events chainworker itself
-- emits (ticket.minted, ...) are never claimed. The row locks last until the caller's
-- transaction ends, and that transaction records the request and marks the row.
CREATE FUNCTION chainworker_claim_outbox_requests(p_limit integer)
RETURNS TABLE (id bigint, tenant_id uuid, aggregate_type text, aggregate_id uuid,
               event_type text, payload jsonb, attempts integer)
LANGUAGE sql SECURITY DEFINER SET search_path = public, pg_temp AS $$
    SELECT o.id, o.tenant_id, o.aggregate_type, o.aggregate_id, o.event_type, o.payload,
           o.attempts
      FROM outbox o
     WHERE o.processed_at IS NULL
       AND o.available_at <= now()
       AND o.event_type IN ('nft.mint_requested', 'nft.transfer_requested', 'nft.burn_requested')
     ORDER BY o.available_at, o.id
     LIMIT p_limit
       FOR UPDATE SKIP LOCKED
$$;

REVOKE ALL ON FUNCTION chainworker_authenticate(uuid) FROM PUBLIC;
REVOKE ALL ON FUNCTION chainworker_note_cross_tenant(text, text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION chainworker_claim_outbox_requests(integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION chainworker_authenticate(uuid) TO chainworker_app;
GRANT EXECUTE ON FUNCTION chainworker_note_cross_tenant(text, text, text) TO chainworker_app;
GRANT EXECUTE ON FUNCTION chainworker_claim_outbox_requests(integer) TO chainworker_app;
