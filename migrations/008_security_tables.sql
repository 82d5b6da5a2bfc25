-- 008: spending limits, account lockouts and multi-signature approvals (the seed's
-- 007_add_security_tables). Isolated by app.current_tenant_id like every other
-- tenant table (the seed's app.tenant_id is not used).

CREATE TABLE spending_limits (
    id                     uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id              uuid NOT NULL,
    user_id                uuid NOT NULL,
    per_transaction_limit  numeric(14, 2) NOT NULL,
    daily_limit            numeric(14, 2) NOT NULL,
    weekly_limit           numeric(14, 2) NOT NULL,
    monthly_limit          numeric(14, 2) NOT NULL,
    currency               char(3) NOT NULL DEFAULT 'USD',
    is_active              boolean NOT NULL DEFAULT true,
    version                integer NOT NULL DEFAULT 1,
    created_at             timestamptz NOT NULL DEFAULT now(),
    updated_at             timestamptz NOT NULL DEFAULT now()
);
CREATE TRIGGER trg_spending_limits_updated_at BEFORE UPDATE ON spending_limits
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

CREATE TABLE spending_transactions (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id       uuid NOT NULL,
    user_id         uuid NOT NULL,
    amount          numeric(14, 2) NOT NULL,
    currency        char(3) NOT NULL DEFAULT 'USD',
    reference_type  text,
    reference_id    uuid,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX idx_spending_transactions_user_time
    ON spending_transactions (tenant_id, user_id, created_at);

CREATE TABLE account_lockout_events (
    id                    uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id             uuid NOT NULL,
    user_id               uuid NOT NULL,
    event_type            text NOT NULL,
    failed_attempt_count  integer NOT NULL DEFAULT 0,
    locked_until          timestamptz,
    ip_address            inet,
    reason                text,
    created_at            timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX idx_account_lockout_events_user ON account_lockout_events (tenant_id, user_id, created_at);

CREATE TABLE multisig_approval_requests (
    id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id           uuid NOT NULL,
    operation_type      text NOT NULL,
    resource_type       text,
    resource_id         uuid,
    requested_by        uuid NOT NULL,
    required_approvals  integer NOT NULL DEFAULT 2,
    current_approvals   integer NOT NULL DEFAULT 0,
    status              text NOT NULL DEFAULT 'pending',
    payload             jsonb NOT NULL DEFAULT '{}'::jsonb,
    expires_at          timestamptz NOT NULL DEFAULT now() + interval '24 hours',
    approved_at         timestamptz,
    rejected_at         timestamptz,
    executed_at         timestamptz,
    version             integer NOT NULL DEFAULT 1,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX idx_multisig_requests_tenant_status ON multisig_approval_requests (tenant_id, status);
CREATE TRIGGER trg_multisig_approval_requests_updated_at BEFORE UPDATE ON multisig_approval_requests
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

CREATE TABLE multisig_approvals (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id    uuid NOT NULL,
    request_id   uuid NOT NULL REFERENCES multisig_approval_requests (id) ON DELETE CASCADE,
    approver_id  uuid NOT NULL,
    comment      text,
    created_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE multisig_rejections (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id    uuid NOT NULL,
    request_id   uuid NOT NULL REFERENCES multisig_approval_requests (id) ON DELETE CASCADE,
    rejector_id  uuid NOT NULL,
    reason       text,
    created_at   timestamptz NOT NULL DEFAULT now()
);

DO $$
DECLARE
    v_table text;
BEGIN
    FOREACH v_table IN ARRAY ARRAY[
        'spending_limits', 'spending_transactions', 'account_lockout_events',
        'multisig_approval_requests', 'multisig_approvals', 'multisig_rejections'
    ] LOOP
        PERFORM enable_tenant_isolation(v_table::regclass);
    END LOOP;
END;
$$;

CREATE FUNCTION apply_multisig_vote() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_TABLE_NAME = 'multisig_approvals' THEN
        UPDATE multisig_approval_requests
           SET current_approvals = current_approvals + 1,
               status = CASE WHEN current_approvals + 1 >= required_approvals
                             THEN 'approved' ELSE status END,
               approved_at = CASE WHEN current_approvals + 1 >= required_approvals
                                  THEN now() ELSE approved_at END
         WHERE id = NEW.request_id AND status = 'pending';
    ELSE
        UPDATE multisig_approval_requests
           SET status = 'rejected', rejected_at = now()
         WHERE id = NEW.request_id AND status = 'pending';
    END IF;
    RETURN NEW;
END;
$$;
COMMENT ON FUNCTION apply_multisig_vote() IS
    'AFTER INSERT trigger on multisig_approvals / multisig_rejections: counts an approval '
    '(approved once required_approvals is reached) or rejects the pending request.';

CREATE TRIGGER trg_multisig_approvals_vote AFTER INSERT ON multisig_approvals
    FOR EACH ROW EXECUTE FUNCTION apply_multisig_vote();
CREATE TRIGGER trg_multisig_rejections_vote AFTER INSERT ON multisig_rejections
    FOR EACH ROW EXECUTE FUNCTION apply_multisig_vote();
