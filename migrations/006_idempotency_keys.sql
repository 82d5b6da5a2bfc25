-- 006: tenant-scoped idempotency keys (the seed's 005_add_idempotency_keys).
--
-- A request with an idempotency key first calls acquire_idempotency_key: exactly
-- one caller holds the lock for a (tenant, key, operation); the others get the
-- cached response, "in progress", or "hash mismatch" when the same key comes
-- with a different request body. The holder finishes with
-- complete_idempotency_key, or gives up with release_idempotency_lock.

CREATE TABLE idempotency_keys (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id        uuid NOT NULL,
    idempotency_key  text NOT NULL,
    operation        text NOT NULL,
    request_hash     text NOT NULL,
    status           text NOT NULL DEFAULT 'processing',
    locked_at        timestamptz,
    locked_by        text,
    lock_expires_at  timestamptz,
    response_status  integer,
    response_body    jsonb,
    resource_type    text,
    resource_id      uuid,
    completed_at     timestamptz,
    expires_at       timestamptz NOT NULL DEFAULT now() + interval '24 hours',
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT uq_idempotency_keys_tenant_key_operation
        UNIQUE (tenant_id, idempotency_key, operation)
);
COMMENT ON COLUMN idempotency_keys.request_hash IS
    'Hash of the request body: a reused key with a different body is refused.';
COMMENT ON COLUMN idempotency_keys.status IS
    'processing (a holder works on it), completed (response cached), failed (may be retried).';
CREATE INDEX idx_idempotency_keys_expires ON idempotency_keys (expires_at);
CREATE TRIGGER trg_idempotency_keys_updated_at BEFORE UPDATE ON idempotency_keys
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();
SELECT enable_tenant_isolation('idempotency_keys');

CREATE FUNCTION acquire_idempotency_key(
    p_tenant_id        uuid,
    p_idempotency_key  text,
    p_operation        text,
    p_request_hash     text,
    p_locked_by        text DEFAULT NULL,
    p_lock_seconds     integer DEFAULT 30,
    p_ttl_seconds      integer DEFAULT 86400
)
RETURNS TABLE (key_id uuid, outcome text, acquired boolean, status text,
               response_status integer, response_body jsonb)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    v_row  idempotency_keys;
    v_id   uuid;
    v_lock interval := make_interval(secs => p_lock_seconds);
BEGIN
    LOOP
        INSERT INTO idempotency_keys (tenant_id, idempotency_key, operation, request_hash, status,
                                      locked_at, locked_by, lock_expires_at, expires_at)
        VALUES (p_tenant_id, p_idempotency_key, p_operation, p_request_hash, 'processing',
                now(), p_locked_by, now() + v_lock, now() + make_interval(secs => p_ttl_seconds))
        ON CONFLICT (tenant_id, idempotency_key, operation) DO NOTHING
        RETURNING id INTO v_id;
        IF v_id IS NOT NULL THEN
            RETURN QUERY SELECT v_id, 'acquired'::text, true, 'processing'::text,
                                NULL::integer, NULL::jsonb;
            RETURN;
        END IF;

        SELECT * INTO v_row FROM idempotency_keys k
         WHERE k.tenant_id = p_tenant_id AND k.idempotency_key = p_idempotency_key
           AND k.operation = p_operation
           FOR UPDATE;
        -- Deleted by cleanup between the two statements: insert again.
        CONTINUE WHEN NOT FOUND;

        IF v_row.expires_at <= now() THEN
            -- An expired record is forgotten: the key starts over.
            UPDATE idempotency_keys
               SET request_hash = p_request_hash, status = 'processing', locked_at = now(),
                   locked_by = p_locked_by, lock_expires_at = now() + v_lock,
                   response_status = NULL, response_body = NULL, resource_type = NULL,
                   resource_id = NULL, completed_at = NULL,
                   expires_at = now() + make_interval(secs => p_ttl_seconds)
             WHERE id = v_row.id;
            RETURN QUERY SELECT v_row.id, 'acquired'::text, true, 'processing'::text,
                                NULL::integer, NULL::jsonb;
        ELSIF v_row.request_hash IS DISTINCT FROM p_request_hash THEN
            RETURN QUERY SELECT v_row.id, 'hash_mismatch'::text, false, v_row.status,
                                NULL::integer, NULL::jsonb;
        ELSIF v_row.status = 'completed' THEN
            RETURN QUERY SELECT v_row.id, 'cached'::text, false, v_row.status,
                                v_row.response_status, v_row.response_body;
        ELSIF v_row.status = 'processing' AND v_row.lock_expires_at > now() THEN
            RETURN QUERY SELECT v_row.id, 'in_progress'::text, false, v_row.status,
                                NULL::integer, NULL::jsonb;
        ELSE
            -- failed, or its holder's lock ran out: take it over.
            UPDATE idempotency_keys
               SET status = 'processing', locked_at = now(), locked_by = p_locked_by,
                   lock_expires_at = now() + v_lock
             WHERE id = v_row.id;
            RETURN QUERY SELECT v_row.id, 'acquired'::text, true, 'processing'::text,
                                NULL::integer, NULL::jsonb;
        END IF;
        RETURN;
    END LOOP;
END;
$$;
COMMENT ON FUNCTION acquire_idempotency_key(uuid, text, text, text, text, integer, integer) IS
    'Atomic check-and-lock of (tenant, key, operation). outcome: acquired (the caller holds the '
    'lock for p_lock_seconds and must complete or release), cached (completed before: '
    'response_status/response_body are the stored response), in_progress (another holder''s '
    'lock is live), hash_mismatch (the key was used with a different request_hash). A failed '
    'key, an expired lock or an expired record (p_ttl_seconds) is acquired again.';

CREATE FUNCTION complete_idempotency_key(
    p_key_id           uuid,
    p_response_status  integer,
    p_response_body    jsonb,
    p_resource_type    text DEFAULT NULL,
    p_resource_id      uuid DEFAULT NULL
) RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE idempotency_keys
       SET status = 'completed', response_status = p_response_status,
           response_body = p_response_body, resource_type = p_resource_type,
           resource_id = p_resource_id, completed_at = now(),
           locked_at = NULL, locked_by = NULL, lock_expires_at = NULL
     WHERE id = p_key_id AND status = 'processing';
    RETURN FOUND;
END;
$$;
COMMENT ON FUNCTION complete_idempotency_key(uuid, integer, jsonb, text, uuid) IS
    'Stores the response of a processing key and releases its lock. False when the key is not '
    'processing (already completed, failed or unknown).';

CREATE FUNCTION release_idempotency_lock(p_key_id uuid, p_set_failed boolean DEFAULT false)
RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE idempotency_keys
       SET status = CASE WHEN p_set_failed THEN 'failed' ELSE status END,
           locked_at = NULL, locked_by = NULL, lock_expires_at = NULL
     WHERE id = p_key_id AND status = 'processing';
    RETURN FOUND;
END;
$$;
COMMENT ON FUNCTION release_idempotency_lock(uuid, boolean) IS
    'Releases the lock of a processing key without a response, so the next acquire takes it; '
    'p_set_failed also marks the key failed. False when the key is not processing.';

CREATE FUNCTION cleanup_expired_idempotency_keys() RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    v_count integer;
BEGIN
    DELETE FROM idempotency_keys
     WHERE expires_at <= now()
       AND NOT (status = 'processing' AND lock_expires_at > now());
    GET DIAGNOSTICS v_count = ROW_COUNT;
    RETURN v_count;
END;
$$;
COMMENT ON FUNCTION cleanup_expired_idempotency_keys() IS
    'Deletes expired idempotency records of every tenant (a live lock is kept until it ends); '
    'returns how many. SECURITY DEFINER: a periodic job, not bound to one tenant.';
