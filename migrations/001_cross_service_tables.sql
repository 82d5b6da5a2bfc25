-- 001: privileges for the runtime role, shared helpers, and the cross-service tables.
--
-- tenants, users, venues, events and orders belong to other services (auth, venue,
-- event, order). In the platform's database they already exist; standalone they do
-- not. Each is created here in a minimal form only when absent, with just the
-- columns the ticket schema needs, so the schema applies in both places. Columns
-- the ticket schema maintains itself (the user stats) are added when missing.
--
-- Every migration runs as chainworker_owner (SET LOCAL ROLE by the runner), so
-- chainworker_owner owns every object; the runtime role chainworker_app gets
-- only data privileges, through the default privileges below, which also cover
-- the objects of later migrations.

ALTER DEFAULT PRIVILEGES FOR ROLE chainworker_owner
    GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO chainworker_app;
ALTER DEFAULT PRIVILEGES FOR ROLE chainworker_owner
    GRANT USAGE, SELECT ON SEQUENCES TO chainworker_app;
ALTER DEFAULT PRIVILEGES FOR ROLE chainworker_owner
    REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC;
ALTER DEFAULT PRIVILEGES FOR ROLE chainworker_owner
    GRANT EXECUTE ON FUNCTIONS TO chainworker_app;

-- ---------------------------------------------------------------------------
-- Helpers used by every later migration
-- ---------------------------------------------------------------------------

CREATE OR REPLACE FUNCTION set_updated_at() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END;
$$;
COMMENT ON FUNCTION set_updated_at() IS
    'BEFORE UPDATE trigger: stamps updated_at with the transaction time.';

-- Turns on row-level security for a tenant-scoped table and creates its
-- {table}_tenant_isolation policy (the one tenant variable: app.current_tenant_id).
-- RLS is ENABLEd, not FORCEd: the owner role is exempt, so the few SECURITY DEFINER
-- functions that must work across tenants (violation logging, cleanup) can.
-- NULLIF: once a transaction-local setting has been used, an unset variable reads
-- as '' rather than NULL; both mean "no tenant" and match no row.
CREATE OR REPLACE FUNCTION enable_tenant_isolation(p_table regclass) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    v_name text := (SELECT relname FROM pg_class WHERE oid = p_table);
BEGIN
    EXECUTE format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY', p_table);
    IF NOT EXISTS (
        SELECT 1 FROM pg_policy WHERE polrelid = p_table AND polname = v_name || '_tenant_isolation'
    ) THEN
        EXECUTE format(
            'CREATE POLICY %I ON %s '
            'USING (tenant_id = NULLIF(current_setting(''app.current_tenant_id'', true), '''')::uuid) '
            'WITH CHECK (tenant_id = NULLIF(current_setting(''app.current_tenant_id'', true), '''')::uuid)',
            v_name || '_tenant_isolation', p_table);
    END IF;
END;
$$;
COMMENT ON FUNCTION enable_tenant_isolation(regclass) IS
    'Migration helper: ENABLE ROW LEVEL SECURITY and create the {table}_tenant_isolation '
    'policy on app.current_tenant_id. Not for the runtime role.';
REVOKE EXECUTE ON FUNCTION enable_tenant_isolation(regclass) FROM chainworker_app;

-- ---------------------------------------------------------------------------
-- Cross-service tables (minimal versions, only where absent)
-- ---------------------------------------------------------------------------

CREATE TABLE IF NOT EXISTS tenants (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name        text NOT NULL,
    slug        text UNIQUE,
    status      text NOT NULL DEFAULT 'active',
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS users (
    id                    uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id             uuid NOT NULL REFERENCES tenants (id),
    email                 text,
    display_name          text,
    role                  text NOT NULL DEFAULT 'user',
    wallet_address        text,
    ticket_purchase_count integer NOT NULL DEFAULT 0,
    total_spent_cents     bigint NOT NULL DEFAULT 0,
    events_attended       integer NOT NULL DEFAULT 0,
    last_purchase_at      timestamptz,
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS venues (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id   uuid NOT NULL REFERENCES tenants (id),
    name        text NOT NULL,
    created_by  uuid REFERENCES users (id),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS events (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id   uuid NOT NULL REFERENCES tenants (id),
    venue_id    uuid REFERENCES venues (id),
    name        text NOT NULL,
    starts_at   timestamptz,
    ends_at     timestamptz,
    status      text NOT NULL DEFAULT 'published',
    created_by  uuid REFERENCES users (id),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS orders (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id    uuid NOT NULL REFERENCES tenants (id),
    user_id      uuid REFERENCES users (id),
    event_id     uuid REFERENCES events (id),
    status       text NOT NULL DEFAULT 'pending',
    total_cents  bigint NOT NULL DEFAULT 0,
    currency     char(3) NOT NULL DEFAULT 'USD',
    version      integer NOT NULL DEFAULT 1,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT chk_orders_status CHECK (status IN
        ('pending', 'reserved', 'paid', 'confirmed', 'completed', 'cancelled', 'refunded',
         'partially_refunded', 'failed', 'expired')),
    CONSTRAINT chk_orders_total_positive CHECK (total_cents >= 0),
    CONSTRAINT chk_orders_version_positive CHECK (version >= 1)
);

-- The user stats the ticket schema maintains (update_user_ticket_stats,
-- update_user_events_attended), added to an existing users table when missing.
DO $$
DECLARE
    v_column record;
BEGIN
    FOR v_column IN
        SELECT * FROM (VALUES
            ('ticket_purchase_count', 'integer NOT NULL DEFAULT 0'),
            ('total_spent_cents', 'bigint NOT NULL DEFAULT 0'),
            ('events_attended', 'integer NOT NULL DEFAULT 0'),
            ('last_purchase_at', 'timestamptz')
        ) AS c (name, definition)
    LOOP
        IF NOT EXISTS (
            SELECT 1 FROM information_schema.columns
             WHERE table_schema = current_schema() AND table_name = 'users'
               AND column_name = v_column.name
        ) THEN
            EXECUTE format('ALTER TABLE users ADD COLUMN %I %s', v_column.name, v_column.definition);
        END IF;
    END LOOP;
END;
$$;

-- Tenant isolation for the cross-service tables this schema created itself; a
-- service that owns its table also owns its policies.
DO $$
DECLARE
    v_table text;
BEGIN
    FOREACH v_table IN ARRAY ARRAY['users', 'venues', 'events', 'orders'] LOOP
        IF EXISTS (
            SELECT 1 FROM pg_class c
             WHERE c.oid = to_regclass(v_table) AND c.relowner = current_user::regrole
        ) THEN
            PERFORM enable_tenant_isolation(v_table::regclass);
        END IF;
    END LOOP;
END;
$$;
