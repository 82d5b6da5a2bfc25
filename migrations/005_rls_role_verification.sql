-- 005: RLS helper functions, the violation log and role verification (the seed's
-- 004_add_rls_role_verification). The tenant lives in one transaction-local
-- setting, app.current_tenant_id: a pooled connection never carries one
-- tenant's context into the next transaction.

CREATE TABLE tenant_access_violations (
    id                   uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id            uuid,
    attempted_tenant_id  uuid,
    user_id              uuid,
    table_name           text,
    operation            text NOT NULL,
    details              jsonb NOT NULL DEFAULT '{}'::jsonb,
    db_user              text NOT NULL DEFAULT session_user,
    client_addr          inet DEFAULT inet_client_addr(),
    created_at           timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE tenant_access_violations IS
    'Audit of cross-tenant access attempts. tenant_id is the tenant in context (NULL when none), '
    'attempted_tenant_id the tenant whose data was asked for.';
CREATE INDEX idx_tenant_access_violations_tenant ON tenant_access_violations (tenant_id, created_at);
SELECT enable_tenant_isolation('tenant_access_violations');

CREATE FUNCTION current_tenant_id() RETURNS uuid
LANGUAGE sql STABLE AS $$
    SELECT NULLIF(current_setting('app.current_tenant_id', true), '')::uuid
$$;
COMMENT ON FUNCTION current_tenant_id() IS
    'The tenant of the current transaction (app.current_tenant_id), NULL when none is set.';

CREATE FUNCTION set_tenant_context(p_tenant_id uuid) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF p_tenant_id IS NULL THEN
        RAISE EXCEPTION 'tenant id must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    PERFORM set_config('app.current_tenant_id', p_tenant_id::text, true);
END;
$$;
COMMENT ON FUNCTION set_tenant_context(uuid) IS
    'Sets app.current_tenant_id for the current transaction only (set_config(..., true)).';

CREATE FUNCTION clear_tenant_context() RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM set_config('app.current_tenant_id', '', true);
END;
$$;
COMMENT ON FUNCTION clear_tenant_context() IS
    'Clears app.current_tenant_id for the rest of the current transaction.';

CREATE FUNCTION verify_tenant_context() RETURNS uuid
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_tenant uuid := current_tenant_id();
BEGIN
    IF v_tenant IS NULL THEN
        RAISE EXCEPTION 'tenant context is not set (call set_tenant_context first)'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN v_tenant;
END;
$$;
COMMENT ON FUNCTION verify_tenant_context() IS
    'Returns the current tenant; raises insufficient_privilege when no tenant context is set.';

CREATE FUNCTION log_tenant_violation(
    p_attempted_tenant_id  uuid,
    p_table_name           text,
    p_operation            text,
    p_details              jsonb DEFAULT '{}'::jsonb
) RETURNS uuid
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    v_id uuid;
BEGIN
    INSERT INTO tenant_access_violations (tenant_id, attempted_tenant_id, user_id, table_name,
                                          operation, details)
    VALUES (current_tenant_id(), p_attempted_tenant_id,
            current_setting_uuid('app.current_user_id'), p_table_name, p_operation,
            coalesce(p_details, '{}'::jsonb))
    RETURNING id INTO v_id;
    RETURN v_id;
END;
$$;
COMMENT ON FUNCTION log_tenant_violation(uuid, text, text, jsonb) IS
    'Records an attempt to reach another tenant''s data, with the tenant and user in context. '
    'SECURITY DEFINER: it records even when the context is missing or differs from the target.';

CREATE FUNCTION verify_rls_role()
RETURNS TABLE (role_name text, is_superuser boolean, bypasses_rls boolean,
               owns_tenant_tables boolean, rls_binds boolean)
LANGUAGE sql STABLE AS $$
    SELECT r.rolname::text, r.rolsuper, r.rolbypassrls,
           EXISTS (SELECT 1 FROM pg_class c
                    WHERE c.relrowsecurity AND pg_has_role(current_user, c.relowner, 'USAGE')),
           NOT r.rolsuper AND NOT r.rolbypassrls
           AND NOT EXISTS (SELECT 1 FROM pg_class c
                            WHERE c.relrowsecurity
                              AND pg_has_role(current_user, c.relowner, 'USAGE'))
      FROM pg_roles r
     WHERE r.rolname = current_user
$$;
COMMENT ON FUNCTION verify_rls_role() IS
    'Whether row-level security binds the current role: not superuser, no BYPASSRLS, and not '
    '(a member of) the owner of any RLS table. The runtime role checks this at start.';
