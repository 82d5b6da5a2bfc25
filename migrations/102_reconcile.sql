-- The reconcile CLI's read paths across tenants. Read-only and narrow: they return
-- what an operator's scan needs to find rows on chain; every write happens afterwards
-- inside a tenant-scoped transaction, under row-level security.

-- Live attempts submitted before the threshold, one keyset page at a time (ordered by
-- submitted_at, id; pass the last row's pair to get the next page). The signed bytes
-- are left out: reconcile never rebroadcasts, and 100,000 rows of them would dominate
-- the scan.
CREATE FUNCTION chainworker_live_transactions(
    p_older_than_seconds double precision,
    p_tenant uuid,
    p_op text,
    p_limit integer,
    p_after_submitted timestamptz DEFAULT NULL,
    p_after_id uuid DEFAULT NULL
) RETURNS TABLE (
    id uuid, tenant_id uuid, ticket_id uuid, request_id uuid, tx_type text, tx_signature text,
    status text, attempt integer, last_valid_block_height bigint,
    submitted_at timestamptz, last_sent_at timestamptz, last_rebroadcast_at timestamptz,
    expiry_check_pending boolean
)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
    SELECT p.id, p.tenant_id, p.ticket_id, p.request_id, p.tx_type::text, p.tx_signature,
           p.status::text, p.attempt, p.last_valid_block_height,
           p.submitted_at, p.last_sent_at, p.last_rebroadcast_at, p.expiry_check_pending
      FROM pending_transactions p
     WHERE p.status IN ('pending', 'confirming')
       AND p.submitted_at <= now() - make_interval(secs => p_older_than_seconds)
       AND (p_tenant IS NULL OR p.tenant_id = p_tenant)
       AND (p_op IS NULL OR p.tx_type = p_op)
       AND (p_after_id IS NULL OR (p.submitted_at, p.id) > (p_after_submitted, p_after_id))
     ORDER BY p.submitted_at, p.id
     LIMIT p_limit
$$;

-- Minted tickets (those with a token mint), one keyset page at a time by ticket id, with
-- the holder's registered wallet when the user has one (else the CLI derives the
-- custodial address).
CREATE FUNCTION chainworker_minted_tickets(
    p_tenant uuid, p_limit integer, p_after uuid DEFAULT NULL
) RETURNS TABLE (
    tenant_id uuid, ticket_id uuid, token_mint text, status text, user_id uuid,
    wallet_address text, registered_wallet text
)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
    SELECT t.tenant_id, t.id, t.token_mint, t.status::text, t.user_id, t.wallet_address,
           w.address
      FROM tickets t
      LEFT JOIN wallets w ON w.tenant_id = t.tenant_id AND w.user_id = t.user_id
     WHERE t.token_mint IS NOT NULL
       AND t.deleted_at IS NULL
       AND (p_tenant IS NULL OR t.tenant_id = p_tenant)
       AND (p_after IS NULL OR t.id > p_after)
     ORDER BY t.id
     LIMIT p_limit
$$;

-- Which tenant a request id or a transaction signature belongs to: `tx show/retry/abandon`
-- take an id alone and then work inside that tenant's context.
CREATE FUNCTION chainworker_locate_request(p_request uuid, p_signature text)
RETURNS TABLE (tenant_id uuid, request_id uuid, tx_id uuid)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
    SELECT r.tenant_id, r.id, NULL::uuid
      FROM chain_requests r
     WHERE p_request IS NOT NULL AND r.id = p_request
    UNION ALL
    SELECT p.tenant_id, p.request_id, p.id
      FROM pending_transactions p
     WHERE p_signature IS NOT NULL AND p.tx_signature = p_signature
     LIMIT 1
$$;

REVOKE ALL ON FUNCTION chainworker_live_transactions(
    double precision, uuid, text, integer, timestamptz, uuid) FROM PUBLIC;
REVOKE ALL ON FUNCTION chainworker_minted_tickets(uuid, integer, uuid) FROM PUBLIC;
REVOKE ALL ON FUNCTION chainworker_locate_request(uuid, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION chainworker_live_transactions(
    double precision, uuid, text, integer, timestamptz, uuid) TO chainworker_app;
GRANT EXECUTE ON FUNCTION chainworker_minted_tickets(uuid, integer, uuid) TO chainworker_app;
GRANT EXECUTE ON FUNCTION chainworker_locate_request(uuid, text) TO chainworker_app;
