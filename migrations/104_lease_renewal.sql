-- The confirmation loop claims every live transaction it holds on each round (twice a
-- second by default). Renewing every lease on every round rewrote each live row, with
-- its signed bytes, several times a second: that is most of PostgreSQL's work in a busy
-- worker. A lease is now renewed only when less than half of it is left; rows still
-- well inside their lease are locked and returned, not rewritten. Taking over free or
-- expired rows, the order (free first, then the oldest lease) and SKIP LOCKED between
-- workers are unchanged.

CREATE OR REPLACE FUNCTION chainworker_claim_live_transactions(
    p_worker text, p_limit integer, p_lease_seconds integer
) RETURNS TABLE (
    id uuid, tenant_id uuid, ticket_id uuid, request_id uuid, tx_type text, tx_signature text,
    status text, attempt integer, last_valid_block_height bigint, serialized_tx bytea,
    submitted_at timestamptz, last_sent_at timestamptz, last_rebroadcast_at timestamptz,
    expiry_check_pending boolean
)
LANGUAGE sql SECURITY DEFINER SET search_path = public, pg_temp AS $$
    WITH claimed AS (
        SELECT c.id,
               (c.lease_owner IS DISTINCT FROM p_worker
                OR c.lease_until IS NULL
                OR c.lease_until < now() + make_interval(secs => p_lease_seconds / 2.0))
                   AS renew
          FROM pending_transactions c
         WHERE c.status IN ('pending', 'confirming')
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
      JOIN claimed ON claimed.id = p.id
$$;
