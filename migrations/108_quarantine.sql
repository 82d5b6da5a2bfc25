-- One bad row never stops the line: a row the relay or the confirmation loop cannot handle
-- is set aside with its reason (quarantined), and the other rows go on in the same round.
--
-- outbox: quarantined_at, with last_error saying why; processed_at is set too, so the row
-- leaves the relay's path. The relay gets its own partial index: the ticket service's and
-- chainworker's own events (ticket.*) no longer share the relay's (a claim used to scan all
-- of them). The claim checks each payload's shape, size and depth in SQL and hands the
-- relay only the one field it reads (reason): a payload never reaches a JSON parser in the
-- worker.
--
-- pending_transactions: quarantined_at and last_error; a quarantined attempt stays live
-- (it may still land: an operator settles it) but the confirmation loop claims it no more.

ALTER TABLE outbox ADD COLUMN quarantined_at timestamptz;
COMMENT ON COLUMN outbox.quarantined_at IS
    'Set aside by chainworker''s relay: the row cannot become a request (last_error says why).';

CREATE INDEX idx_outbox_relay ON outbox (available_at, id)
    WHERE processed_at IS NULL
      AND event_type IN ('nft.mint_requested', 'nft.transfer_requested', 'nft.burn_requested');

ALTER TABLE pending_transactions
    ADD COLUMN quarantined_at timestamptz,
    ADD COLUMN last_error text;
COMMENT ON COLUMN pending_transactions.quarantined_at IS
    'Set aside by the confirmation loop: the row or the chain''s answer about it cannot be '
    'handled (last_error says why). Still live; settled by an operator.';

-- What is wrong with an outbox payload, if anything: the relay's limits (a JSON object of
-- at most 16 KiB, nested at most 16 deep).
CREATE FUNCTION chainworker_payload_problem(p_payload jsonb) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE
        WHEN p_payload IS NULL OR jsonb_typeof(p_payload) <> 'object'
            THEN 'payload must be a JSON object'
        WHEN pg_column_size(p_payload) > 16384 THEN 'payload is larger than 16 KiB'
        WHEN jsonb_path_exists(p_payload, 'strict $.**{17 to last}')
            THEN 'payload is nested deeper than 16 levels'
    END
$$;

DROP FUNCTION chainworker_claim_outbox_requests(integer);
CREATE FUNCTION chainworker_claim_outbox_requests(p_limit integer)
RETURNS TABLE (id bigint, tenant_id uuid, aggregate_type text, aggregate_id uuid,
               event_type text, reason text, problem text, attempts integer)
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
                                'nft.burn_requested')
           AND o.available_at <= now()
         ORDER BY o.available_at, o.id
         LIMIT p_limit
           FOR UPDATE SKIP LOCKED
    ), checked AS (
        SELECT c.*, chainworker_payload_problem(c.payload) AS problem FROM claimed c
    )
    SELECT k.id, k.tenant_id, k.aggregate_type, k.aggregate_id, k.event_type,
           CASE WHEN k.problem IS NULL THEN left(k.payload->>'reason', 100) END,
           k.problem, k.attempts
      FROM checked k
     ORDER BY k.id;
END;
$$;
COMMENT ON FUNCTION chainworker_claim_outbox_requests(integer) IS
    'Claims due nft.*_requested outbox rows of every tenant (FOR UPDATE SKIP LOCKED, locks held '
    'until the caller''s transaction ends): their ids, aggregate, the payload''s reason and '
    'what is wrong with the payload (NULL when nothing). The payload itself never leaves.';

CREATE OR REPLACE FUNCTION chainworker_backlog()
RETURNS TABLE (queued_requests bigint, outbox_unprocessed bigint)
LANGUAGE sql SECURITY DEFINER SET search_path = public, pg_temp AS $$
    SELECT (SELECT count(*) FROM chain_requests WHERE status = 'queued'),
           -- the relay's backlog only (its own index): ticket.* events are for others
           (SELECT count(*) FROM outbox
             WHERE processed_at IS NULL
               AND event_type IN ('nft.mint_requested', 'nft.transfer_requested',
                                  'nft.burn_requested'))
$$;

-- The loop's claim (104) no longer takes quarantined attempts, and refuses NULL and
-- out-of-range arguments (every cross-tenant function does: migration 106).
CREATE OR REPLACE FUNCTION chainworker_claim_live_transactions(
    p_worker text, p_limit integer, p_lease_seconds integer
) RETURNS TABLE (
    id uuid, tenant_id uuid, ticket_id uuid, request_id uuid, tx_type text, tx_signature text,
    status text, attempt integer, last_valid_block_height bigint, serialized_tx bytea,
    submitted_at timestamptz, last_sent_at timestamptz, last_rebroadcast_at timestamptz,
    expiry_check_pending boolean
)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    IF p_worker IS NULL OR length(p_worker) NOT BETWEEN 1 AND 200 THEN
        PERFORM chainworker_refuse('p_worker must be 1 to 200 characters');
    ELSIF p_limit IS NULL OR p_limit NOT BETWEEN 1 AND 10000 THEN
        PERFORM chainworker_refuse('p_limit must be from 1 to 10000');
    ELSIF p_lease_seconds IS NULL OR p_lease_seconds NOT BETWEEN 1 AND 600 THEN
        PERFORM chainworker_refuse('p_lease_seconds must be from 1 to 600');
    END IF;
    RETURN QUERY
    WITH claimed AS (
        SELECT c.id,
               (c.lease_owner IS DISTINCT FROM p_worker
                OR c.lease_until IS NULL
                OR c.lease_until < now() + make_interval(secs => p_lease_seconds / 2.0))
                   AS renew
          FROM pending_transactions c
         WHERE c.status IN ('pending', 'confirming')
           AND c.quarantined_at IS NULL
           AND (c.lease_until IS NULL OR c.lease_until < now() OR c.lease_owner = p_worker)
         ORDER BY c.lease_until NULLS FIRST, c.submitted_at
         LIMIT p_limit
           FOR UPDATE SKIP LOCKED
    ), renewed AS (
        UPDATE pending_transactions AS p
           SET lease_owner = p_worker,
               lease_until = now() + make_interval(secs => p_lease_seconds)
          FROM claimed
         WHERE p.id = claimed.id AND claimed.renew
    )
    SELECT p.id, p.tenant_id, p.ticket_id, p.request_id, p.tx_type::text, p.tx_signature,
           p.status::text, p.attempt, p.last_valid_block_height, p.serialized_tx,
           p.submitted_at, p.last_sent_at, p.last_rebroadcast_at, p.expiry_check_pending
      FROM pending_transactions AS p
      JOIN claimed ON claimed.id = p.id;
END;
$$;

REVOKE ALL ON FUNCTION chainworker_claim_outbox_requests(integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION chainworker_claim_outbox_requests(integer) TO chainworker_app;
