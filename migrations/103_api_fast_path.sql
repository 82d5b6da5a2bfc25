-- The API's one-statement path for POST mint, transfer execute and burn.
--
-- chainworker_api_request does in one statement, so in one transaction and one round
-- trip, what the API did in two transactions: set the tenant context, take the
-- Idempotency-Key (the seed's acquire_idempotency_key), check the transfer and the
-- ticket, record the request (collapsing onto a live one, as record_requests does) and
-- store the 202 body (complete_idempotency_key). A refused or unknown ticket releases
-- the key as failed (release_idempotency_lock), so a retry runs again.
--
-- SECURITY INVOKER: it runs as the caller (chainworker_app) under the same row-level
-- security as the statements it replaces; the tenant comes from the caller's token.
--
-- Whether the ticket's state allows the operation is decided by the API's rules
-- (lifecycle/ticket_rules.py). The caller passes p_allowed, every state those rules
-- allow, as 'ticket status|minted or unminted|transfer status or empty'; a ticket in
-- any other state is returned unrecorded (outcome refused) for the API to explain.
--
-- A second call with the same key while the first one's transaction is open answers
-- in_progress (409 + Retry-After), as a claim committed by another process does,
-- instead of waiting on the key's row: a transaction-level advisory lock on
-- (tenant, route, key) marks the key as taken while its transaction runs.

CREATE FUNCTION chainworker_api_request(
    p_tenant_id       uuid,
    p_key             text,
    p_route           text,
    p_request_hash    text,
    p_locked_by       text,
    p_lock_seconds    integer,
    p_ttl_seconds     integer,
    p_operation       text,
    p_ticket_id       uuid,
    p_transfer_id     uuid,
    p_reason          text,
    p_allowed         text[],
    p_status_url_prefix text
) RETURNS TABLE (
    outcome          text,
    response_status  integer,
    response_body    jsonb,
    request_id       uuid,
    created          boolean,
    missing          text,
    ticket_status    text,
    token_mint       text,
    transfer_status  text
)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    v_key       record;
    v_ticket    uuid := p_ticket_id;
    v_transfer  text;
    v_status    text;
    v_mint      text;
    v_id        uuid;
    v_live      text;
    v_created   boolean;
    v_body      jsonb;
BEGIN
    PERFORM set_tenant_context(p_tenant_id),
            set_config('app.actor_type', 'service', true),
            set_config('app.status_change_reason', p_operation || ' requested', true),
            set_config('app.status_change_source', 'api', true),
            set_config('app.current_user_id', '', true);

    -- 7310: this function's advisory lock class (the two-key form, apart from any
    -- single bigint lock such as the migration runner's).
    IF NOT pg_try_advisory_xact_lock(
        7310, hashtext(p_tenant_id::text || ' ' || p_route || ' ' || p_key)
    ) THEN
        RETURN QUERY SELECT 'in_progress'::text, NULL::integer, NULL::jsonb, NULL::uuid,
                            NULL::boolean, NULL::text, NULL::text, NULL::text, NULL::text;
        RETURN;
    END IF;

    SELECT a.key_id, a.outcome, a.response_status, a.response_body INTO v_key
      FROM acquire_idempotency_key(p_tenant_id, p_key, p_route, p_request_hash, p_locked_by,
                                   p_lock_seconds, p_ttl_seconds) AS a;
    IF v_key.outcome <> 'acquired' THEN
        RETURN QUERY SELECT v_key.outcome, v_key.response_status, v_key.response_body,
                            NULL::uuid, NULL::boolean, NULL::text, NULL::text, NULL::text,
                            NULL::text;
        RETURN;
    END IF;

    IF p_transfer_id IS NOT NULL THEN
        SELECT t.ticket_id, t.status INTO v_ticket, v_transfer
          FROM ticket_transfers t WHERE t.id = p_transfer_id
           FOR UPDATE;
        IF NOT FOUND THEN
            PERFORM release_idempotency_lock(v_key.key_id, true);
            RETURN QUERY SELECT 'not_found'::text, NULL::integer, NULL::jsonb, NULL::uuid,
                                NULL::boolean, 'ticket_transfers'::text, NULL::text,
                                NULL::text, NULL::text;
            RETURN;
        END IF;
    END IF;

    SELECT t.status::text, t.token_mint INTO v_status, v_mint FROM tickets t WHERE t.id = v_ticket;
    IF NOT FOUND THEN
        PERFORM release_idempotency_lock(v_key.key_id, true);
        RETURN QUERY SELECT 'not_found'::text, NULL::integer, NULL::jsonb, NULL::uuid,
                            NULL::boolean, 'tickets'::text, NULL::text, NULL::text, NULL::text;
        RETURN;
    END IF;
    IF NOT (concat_ws('|', v_status,
                      CASE WHEN v_mint IS NULL THEN 'unminted' ELSE 'minted' END,
                      coalesce(v_transfer, '')) = ANY (p_allowed)) THEN
        PERFORM release_idempotency_lock(v_key.key_id, true);
        RETURN QUERY SELECT 'refused'::text, NULL::integer, NULL::jsonb, NULL::uuid,
                            NULL::boolean, NULL::text, v_status, v_mint, v_transfer;
        RETURN;
    END IF;

    -- At most one live request per (tenant, ticket, operation): asking again finds it.
    -- A live one that settles between the insert and the lookup is looked for again.
    FOR attempt IN 1..3 LOOP
        INSERT INTO chain_requests (tenant_id, ticket_id, transfer_id, operation, reason, source)
        VALUES (p_tenant_id, v_ticket, p_transfer_id, p_operation, p_reason, 'api')
        ON CONFLICT (tenant_id, ticket_id, operation) WHERE status IN ('queued', 'submitted')
        DO NOTHING
        RETURNING id INTO v_id;
        IF v_id IS NOT NULL THEN
            v_created := true;
            v_live := 'queued';
            EXIT;
        END IF;
        SELECT r.id, r.status INTO v_id, v_live
          FROM chain_requests r
         WHERE r.tenant_id = p_tenant_id AND r.ticket_id = v_ticket
           AND r.operation = p_operation AND r.status IN ('queued', 'submitted');
        IF v_id IS NOT NULL THEN
            v_created := false;
            EXIT;
        END IF;
    END LOOP;
    IF v_id IS NULL THEN
        RAISE EXCEPTION 'could not record the request: live requests kept changing'
            USING ERRCODE = 'unique_violation';
    END IF;

    -- The API's 202 body (schemas.Accepted), stored so that a replay returns it as is.
    v_body := jsonb_build_object(
        'request_id', v_id, 'ticket_id', v_ticket, 'operation', p_operation,
        'status', v_live, 'created', v_created, 'status_url', p_status_url_prefix || v_id);
    PERFORM complete_idempotency_key(v_key.key_id, 202, v_body);
    RETURN QUERY SELECT 'recorded'::text, 202, v_body, v_id, v_created, NULL::text, NULL::text,
                        NULL::text, NULL::text;
END;
$$;

COMMENT ON FUNCTION chainworker_api_request(uuid, text, text, text, text, integer, integer,
                                            text, uuid, uuid, text, text[], text) IS
    'The API''s POST mint/transfer/burn in one statement: idempotency key, transfer and '
    'ticket check against p_allowed, record the request, store the 202 body. outcome: '
    'recorded (response_body, request_id, created), cached (response_status, response_body), '
    'hash_mismatch, in_progress, not_found (missing: the table), refused (ticket_status, '
    'token_mint, transfer_status). Runs as the caller, under row-level security.';

REVOKE ALL ON FUNCTION chainworker_api_request(uuid, text, text, text, text, integer, integer,
                                               text, uuid, uuid, text, text[], text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION chainworker_api_request(uuid, text, text, text, text, integer, integer,
                                                  text, uuid, uuid, text, text[], text)
    TO chainworker_app;
