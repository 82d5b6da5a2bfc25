-- metadata_update: a request that changes a minted ticket's on-chain metadata (TokenMetadata
-- UpdateField / RemoveKey, as the update authority), through the same recorded-request
-- lifecycle as mint, transfer and burn.
--
-- 1. chain_requests takes the seed's five operations (pending_transactions.tx_type, 011);
--    verify is carried out by its own migration's code.
-- 2. A metadata update carries its change (`changes`: {"fields": {key: value}, "remove":
--    [key]}); no other operation does. The rules of a change are the worker's
--    (lifecycle/metadata.py), checked before it is recorded; here its shape only.
-- 3. Metadata updates never collapse onto each other: several live updates of one ticket
--    are different requests, carried out one at a time in seq order (107), so none is
--    lost. A second delivery of the same ask collapses through the way in's own key
--    (`request_key`): the outbox row it came from, or the event-wide update it belongs to.
--    An API retry is replayed by its Idempotency-Key (chainworker_api_request).
-- 4. The API's one statement records metadata updates with their change.
-- 5. The outbox relay claims nft.metadata_update_requested too, and hands the worker the
--    payload's fields and keys as text arrays (its shape checked here): a payload still
--    never reaches a JSON parser in the worker.
-- 6. Check-in on chain: the seed emits no outbox event when a ticket's status changes, so a
--    trigger added here asks for `checked_in_at` and `status` on the NFT when a minted
--    ticket becomes checked_in or used, unless the tenant turned it off
--    (chainworker_tenant_settings.record_check_in).

-- 1 ------------------------------------------------------------------------------------
ALTER TABLE chain_requests DROP CONSTRAINT IF EXISTS chk_chain_requests_operation;
ALTER TABLE chain_requests ADD CONSTRAINT chk_chain_requests_operation
    CHECK (operation IN ('mint', 'transfer', 'burn', 'metadata_update', 'verify'));

-- 2, 3 ---------------------------------------------------------------------------------
ALTER TABLE chain_requests
    ADD COLUMN changes jsonb,
    ADD COLUMN request_key text,
    ADD CONSTRAINT chk_chain_requests_changes CHECK (
        (operation = 'metadata_update') = (changes IS NOT NULL)
        AND (changes IS NULL
             OR (jsonb_typeof(changes -> 'fields') IS NOT DISTINCT FROM 'object'
                 AND jsonb_typeof(changes -> 'remove') IS NOT DISTINCT FROM 'array'))
    ),
    ADD CONSTRAINT chk_chain_requests_request_key CHECK (
        request_key IS NULL OR length(request_key) BETWEEN 1 AND 200
    );
COMMENT ON COLUMN chain_requests.changes IS
    'A metadata_update''s change: {"fields": {key: value}, "remove": [key]}; NULL otherwise.';
COMMENT ON COLUMN chain_requests.request_key IS
    'The way in''s own key for this ask (outbox:<row id>, event:<digest>): the same key for '
    'the same ticket is one request while live or confirmed.';

-- The same ask again finds the request it made, unless that one ended without effect.
CREATE UNIQUE INDEX uq_chain_requests_key ON chain_requests (tenant_id, ticket_id, request_key)
    WHERE request_key IS NOT NULL
      AND status NOT IN ('failed', 'expired', 'refused', 'abandoned');

DROP INDEX uq_chain_requests_live;
CREATE UNIQUE INDEX uq_chain_requests_live
    ON chain_requests (tenant_id, ticket_id, operation)
    WHERE status IN ('queued', 'submitted') AND operation NOT IN ('transfer', 'metadata_update');

COMMENT ON TABLE chain_requests IS
    'A request asked of chainworker (mint, transfer, burn, metadata_update). Live while queued '
    'or submitted; at most one live mint and one live burn per (tenant, ticket), one live '
    'request per transfer; metadata updates are each their own. The requests of a ticket are '
    'carried out in seq order.';

-- 4 ------------------------------------------------------------------------------------
-- As in 107, with p_changes: a metadata update is inserted as a request of its own (the
-- Idempotency-Key is what makes a retry the same request); the other operations collapse
-- as before.
DROP FUNCTION chainworker_api_request(uuid, text, text, text, text, integer, integer, text,
                                      uuid, uuid, text, text[], text);

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
    p_status_url_prefix text,
    p_changes         jsonb
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

    IF p_operation = 'metadata_update' THEN
        INSERT INTO chain_requests (tenant_id, ticket_id, operation, source, changes)
        VALUES (p_tenant_id, v_ticket, p_operation, 'api', p_changes)
        RETURNING id INTO v_id;
        v_created := true;
        v_live := 'queued';
    END IF;
    -- At most one live mint and one live burn per ticket, one live request per transfer:
    -- asking again finds it. One that settles between the insert and the lookup is looked
    -- for again.
    FOR attempt IN 1..3 LOOP
        EXIT WHEN v_id IS NOT NULL;
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
               WHERE status IN ('queued', 'submitted')
                 AND operation NOT IN ('transfer', 'metadata_update')
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

COMMENT ON FUNCTION chainworker_api_request(uuid, text, text, text, text, integer, integer,
                                            text, uuid, uuid, text, text[], text, jsonb) IS
    'The API''s POST mint/transfer/burn/metadata in one statement: idempotency key, transfer '
    'and ticket check against p_allowed, record the request (a metadata update with '
    'p_changes, never collapsed), store the 202 body. outcome: recorded (response_body, '
    'request_id, created), cached (response_status, response_body), hash_mismatch, '
    'in_progress, not_found (missing: the table), refused (ticket_status, token_mint, '
    'transfer_status). Runs as the caller, under row-level security.';

REVOKE ALL ON FUNCTION chainworker_api_request(uuid, text, text, text, text, integer, integer,
                                               text, uuid, uuid, text, text[], text, jsonb)
    FROM PUBLIC;
GRANT EXECUTE ON FUNCTION chainworker_api_request(uuid, text, text, text, text, integer,
                                                  integer, text, uuid, uuid, text, text[],
                                                  text, jsonb)
    TO chainworker_app;

-- 5 ------------------------------------------------------------------------------------
-- What is wrong with the shape of a metadata update payload, if anything: fields an object
-- of text values, remove a list of text (either may be left out). What the keys and values
-- may be is the worker's rule, checked on the arrays the claim hands over.
CREATE FUNCTION chainworker_metadata_payload_problem(p_payload jsonb) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE
        WHEN jsonb_typeof(p_payload) IS DISTINCT FROM 'object'
            THEN 'payload must be a JSON object'
        WHEN p_payload ? 'fields' AND jsonb_typeof(p_payload -> 'fields') <> 'object'
            THEN 'payload.fields must be an object of key -> text'
        WHEN p_payload ? 'remove' AND jsonb_typeof(p_payload -> 'remove') <> 'array'
            THEN 'payload.remove must be a list of keys'
        -- Each set is read only once its shape is known (a function over the wrong kind of
        -- value would fail the whole claim).
        WHEN EXISTS (SELECT 1 FROM jsonb_each(CASE WHEN jsonb_typeof(p_payload -> 'fields')
                                                        = 'object'
                                                   THEN p_payload -> 'fields' END) f
                      WHERE jsonb_typeof(f.value) <> 'string')
            THEN 'every value of payload.fields must be text'
        WHEN EXISTS (SELECT 1 FROM jsonb_array_elements(
                                       CASE WHEN jsonb_typeof(p_payload -> 'remove') = 'array'
                                            THEN p_payload -> 'remove' END) k
                      WHERE jsonb_typeof(k) <> 'string')
            THEN 'every key of payload.remove must be text'
    END
$$;
COMMENT ON FUNCTION chainworker_metadata_payload_problem(jsonb) IS
    'The shape problem of an nft.metadata_update_requested payload (fields an object of '
    'text, remove a list of text), or NULL.';

DROP INDEX idx_outbox_relay;
CREATE INDEX idx_outbox_relay ON outbox (available_at, id)
    WHERE processed_at IS NULL
      AND event_type IN ('nft.mint_requested', 'nft.transfer_requested', 'nft.burn_requested',
                         'nft.metadata_update_requested');

DROP FUNCTION chainworker_claim_outbox_requests(integer);
CREATE FUNCTION chainworker_claim_outbox_requests(p_limit integer)
RETURNS TABLE (id bigint, tenant_id uuid, aggregate_type text, aggregate_id uuid,
               event_type text, reason text, problem text, attempts integer,
               field_keys text[], field_values text[], remove_keys text[])
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    IF p_limit IS NULL OR p_limit NOT BETWEEN 1 AND 10000 THEN
        PERFORM chainworker_refuse('p_limit must be from 1 to 10000');
    END IF;
    RETURN QUERY
    WITH claimed AS (
        SELECT o.id, o.tenant_id, o.aggregate_type, o.aggregate_id, o.event_type, o.payload,
               o.attempts
          FROM outbox o
         WHERE o.processed_at IS NULL
           AND o.event_type IN ('nft.mint_requested', 'nft.transfer_requested',
                                'nft.burn_requested', 'nft.metadata_update_requested')
           AND o.available_at <= now()
         ORDER BY o.available_at, o.id
         LIMIT p_limit
           FOR UPDATE SKIP LOCKED
    ), checked AS (
        SELECT c.*,
               coalesce(chainworker_payload_problem(c.payload),
                        CASE WHEN c.event_type = 'nft.metadata_update_requested'
                             THEN chainworker_metadata_payload_problem(c.payload) END)
                   AS problem
          FROM claimed c
    )
    SELECT k.id, k.tenant_id, k.aggregate_type, k.aggregate_id, k.event_type,
           CASE WHEN k.problem IS NULL THEN left(k.payload->>'reason', 100) END,
           k.problem, k.attempts, f.keys, f.vals, r.keys
      FROM checked k
      -- The arrays are made only of a metadata update whose payload has the right shape:
      -- read from anything else, they would fail the whole claim.
      LEFT JOIN LATERAL (
           SELECT array_agg(e.key ORDER BY e.key) AS keys,
                  array_agg(e.value ORDER BY e.key) AS vals
             FROM jsonb_each_text(CASE WHEN k.problem IS NULL
                                        AND k.event_type = 'nft.metadata_update_requested'
                                       THEN k.payload -> 'fields' END) e) f ON true
      LEFT JOIN LATERAL (
           SELECT array_agg(e.value ORDER BY e.ord) AS keys
             FROM jsonb_array_elements_text(CASE WHEN k.problem IS NULL
                                                  AND k.event_type
                                                      = 'nft.metadata_update_requested'
                                                 THEN k.payload -> 'remove' END)
                  WITH ORDINALITY AS e(value, ord)) r ON true
     ORDER BY k.id;
END;
$$;
COMMENT ON FUNCTION chainworker_claim_outbox_requests(integer) IS
    'Claims due nft.*_requested outbox rows of every tenant (FOR UPDATE SKIP LOCKED, locks held '
    'until the caller''s transaction ends): their ids, aggregate, the payload''s reason, a '
    'metadata update''s fields (keys and values, by key) and keys to remove, and what is wrong '
    'with the payload (NULL when nothing). The payload itself never leaves.';
REVOKE ALL ON FUNCTION chainworker_claim_outbox_requests(integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION chainworker_claim_outbox_requests(integer) TO chainworker_app;

CREATE OR REPLACE FUNCTION chainworker_backlog()
RETURNS TABLE (queued_requests bigint, outbox_unprocessed bigint)
LANGUAGE sql SECURITY DEFINER SET search_path = public, pg_temp AS $$
    SELECT (SELECT count(*) FROM chain_requests WHERE status = 'queued'),
           -- the relay's backlog only (its own index): ticket.* events are for others
           (SELECT count(*) FROM outbox
             WHERE processed_at IS NULL
               AND event_type IN ('nft.mint_requested', 'nft.transfer_requested',
                                  'nft.burn_requested', 'nft.metadata_update_requested'))
$$;

-- 6 ------------------------------------------------------------------------------------
CREATE TABLE chainworker_tenant_settings (
    tenant_id        uuid PRIMARY KEY REFERENCES tenants (id),
    record_check_in  boolean NOT NULL DEFAULT true,
    updated_at       timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE chainworker_tenant_settings IS
    'chainworker''s settings of one tenant; a tenant without a row has the defaults.';
COMMENT ON COLUMN chainworker_tenant_settings.record_check_in IS
    'When a minted ticket becomes checked_in or used, record checked_in_at and status on its NFT.';
SELECT enable_tenant_isolation('chainworker_tenant_settings');
GRANT SELECT, INSERT, UPDATE ON chainworker_tenant_settings TO chainworker_app;

-- Runs as the owner whoever checks the ticket in: the ticket service's role need not be
-- able to read chainworker's settings. It writes one outbox row of the ticket's own tenant,
-- of the ticket's own values, and nothing else.
CREATE FUNCTION chainworker_request_check_in_metadata() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    IF coalesce((SELECT s.record_check_in FROM chainworker_tenant_settings s
                  WHERE s.tenant_id = NEW.tenant_id), true) THEN
        INSERT INTO outbox (tenant_id, aggregate_type, aggregate_id, event_type, payload)
        VALUES (NEW.tenant_id, 'ticket', NEW.id, 'nft.metadata_update_requested',
                jsonb_build_object('fields', jsonb_build_object(
                    'checked_in_at',
                    to_char(coalesce(NEW.checked_in_at, now()) AT TIME ZONE 'UTC',
                            'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
                    'status', NEW.status)));
    END IF;
    RETURN NULL;
END;
$$;
COMMENT ON FUNCTION chainworker_request_check_in_metadata() IS
    'AFTER UPDATE OF status trigger on tickets: a minted ticket that became checked_in or used '
    'asks for checked_in_at and status on its NFT (an nft.metadata_update_requested outbox '
    'row), unless its tenant''s chainworker_tenant_settings.record_check_in is false.';
REVOKE ALL ON FUNCTION chainworker_request_check_in_metadata() FROM PUBLIC;
REVOKE ALL ON FUNCTION chainworker_request_check_in_metadata() FROM chainworker_app;

CREATE TRIGGER trg_tickets_check_in_metadata AFTER UPDATE OF status ON tickets
    FOR EACH ROW
    WHEN (NEW.status IN ('checked_in', 'used') AND OLD.status IS DISTINCT FROM NEW.status
          AND NEW.token_mint IS NOT NULL)
    EXECUTE FUNCTION chainworker_request_check_in_metadata();
