-- Operations on one ticket run in acceptance order, and none is folded into another
-- unless it is the same request.
--
-- A transfer request is keyed by its transfer: while A->B is live, an accepted B->C is
-- a request of its own (it used to collapse onto A->B on (tenant, ticket, operation), and
-- B->C never happened). Mints and burns still collapse onto a live one of their kind.
-- `seq` is the order requests were accepted in; a request runs only once every earlier
-- live request of its ticket has settled.

ALTER TABLE chain_requests ADD COLUMN seq bigint GENERATED ALWAYS AS IDENTITY;
COMMENT ON COLUMN chain_requests.seq IS
    'Acceptance order: the requests of one ticket are carried out in this order, one at a time.';

DROP INDEX uq_chain_requests_live;
CREATE UNIQUE INDEX uq_chain_requests_live
    ON chain_requests (tenant_id, ticket_id, operation)
    WHERE status IN ('queued', 'submitted') AND operation <> 'transfer';
CREATE UNIQUE INDEX uq_chain_requests_live_transfer
    ON chain_requests (tenant_id, transfer_id)
    WHERE status IN ('queued', 'submitted') AND operation = 'transfer';
CREATE INDEX idx_chain_requests_live_ticket
    ON chain_requests (tenant_id, ticket_id, seq)
    WHERE status IN ('queued', 'submitted');

COMMENT ON TABLE chain_requests IS
    'A mint/transfer/burn asked of chainworker. Live while queued or submitted; at most one '
    'live mint and one live burn per (tenant, ticket), and one live request per transfer. '
    'The requests of a ticket are carried out in seq order.';

-- The API's one statement (migration 103): a transfer execute collapses onto the live
-- request of the same transfer only; and, in depth, it compares the rows' tenant with the
-- caller's explicitly, so a policy mistake (row-level security off, a permissive policy)
-- cannot hand tenant B tenant A's ticket.
CREATE OR REPLACE FUNCTION chainworker_api_request(
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
          FROM ticket_transfers t WHERE t.id = p_transfer_id AND t.tenant_id = p_tenant_id
           FOR UPDATE;
        IF NOT FOUND THEN
            PERFORM release_idempotency_lock(v_key.key_id, true);
            RETURN QUERY SELECT 'not_found'::text, NULL::integer, NULL::jsonb, NULL::uuid,
                                NULL::boolean, 'ticket_transfers'::text, NULL::text,
                                NULL::text, NULL::text;
            RETURN;
        END IF;
    END IF;

    SELECT t.status::text, t.token_mint INTO v_status, v_mint
      FROM tickets t WHERE t.id = v_ticket AND t.tenant_id = p_tenant_id;
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

    -- At most one live mint and one live burn per ticket, one live request per transfer:
    -- asking again finds it. One that settles between the insert and the lookup is looked
    -- for again.
    FOR attempt IN 1..3 LOOP
        IF p_operation = 'transfer' THEN
            INSERT INTO chain_requests (tenant_id, ticket_id, transfer_id, operation, reason,
                                        source)
            VALUES (p_tenant_id, v_ticket, p_transfer_id, p_operation, p_reason, 'api')
            ON CONFLICT (tenant_id, transfer_id)
               WHERE status IN ('queued', 'submitted') AND operation = 'transfer'
            DO NOTHING
            RETURNING id INTO v_id;
        ELSE
            INSERT INTO chain_requests (tenant_id, ticket_id, transfer_id, operation, reason,
                                        source)
            VALUES (p_tenant_id, v_ticket, p_transfer_id, p_operation, p_reason, 'api')
            ON CONFLICT (tenant_id, ticket_id, operation)
               WHERE status IN ('queued', 'submitted') AND operation <> 'transfer'
            DO NOTHING
            RETURNING id INTO v_id;
        END IF;
        IF v_id IS NOT NULL THEN
            v_created := true;
            v_live := 'queued';
            EXIT;
        END IF;
        SELECT r.id, r.status INTO v_id, v_live
          FROM chain_requests r
         WHERE r.tenant_id = p_tenant_id AND r.ticket_id = v_ticket
           AND r.operation = p_operation AND r.status IN ('queued', 'submitted')
           AND r.transfer_id IS NOT DISTINCT FROM p_transfer_id;
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
