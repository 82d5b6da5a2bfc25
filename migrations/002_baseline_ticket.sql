-- 002: the ticket service's core tables (the seed's 001_baseline_ticket, 18 tables),
-- the reservation and user-stats triggers, and the tickets RLS policies.
--
-- Foreign keys to the cross-service tables are added in 009, CHECK constraints in
-- 011 and unique constraints in 010, as in the seed's sequence. Columns named
-- `version` carry optimistic locking: writers bump them with
-- `SET version = version + 1 ... WHERE version = $expected`.

-- ---------------------------------------------------------------------------
-- ticket_types
-- ---------------------------------------------------------------------------
CREATE TABLE ticket_types (
    id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id           uuid NOT NULL,
    event_id            uuid NOT NULL,
    name                text NOT NULL,
    description         text,
    price_cents         bigint NOT NULL DEFAULT 0,
    currency            char(3) NOT NULL DEFAULT 'USD',
    quantity            integer NOT NULL DEFAULT 0,
    available_quantity  integer NOT NULL DEFAULT 0,
    reserved_quantity   integer NOT NULL DEFAULT 0,
    sold_quantity       integer NOT NULL DEFAULT 0,
    max_per_order       integer,
    sale_starts_at      timestamptz,
    sale_ends_at        timestamptz,
    status              text NOT NULL DEFAULT 'active',
    is_transferable     boolean NOT NULL DEFAULT true,
    metadata            jsonb NOT NULL DEFAULT '{}'::jsonb,
    version             integer NOT NULL DEFAULT 1,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX idx_ticket_types_tenant_event ON ticket_types (tenant_id, event_id);
COMMENT ON COLUMN ticket_types.available_quantity IS
    'Kept by the reservation triggers: down on reservation, back up on release/expiry/cancel.';

-- ---------------------------------------------------------------------------
-- reservations
-- ---------------------------------------------------------------------------
CREATE TABLE reservations (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id       uuid NOT NULL,
    event_id        uuid NOT NULL,
    ticket_type_id  uuid NOT NULL REFERENCES ticket_types (id),
    user_id         uuid,
    order_id        uuid,
    quantity        integer NOT NULL DEFAULT 1,
    total_cents     bigint NOT NULL DEFAULT 0,
    status          text NOT NULL DEFAULT 'active',
    expires_at      timestamptz NOT NULL DEFAULT now() + interval '15 minutes',
    released_at     timestamptz,
    release_reason  text,
    version         integer NOT NULL DEFAULT 1,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX idx_reservations_tenant_status ON reservations (tenant_id, status);
CREATE INDEX idx_reservations_expiring ON reservations (expires_at)
    WHERE status IN ('pending', 'active');
CREATE INDEX idx_reservations_ticket_type ON reservations (ticket_type_id);

-- ---------------------------------------------------------------------------
-- tickets
-- ---------------------------------------------------------------------------
CREATE TABLE tickets (
    id                 uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id          uuid NOT NULL,
    event_id           uuid NOT NULL,
    ticket_type_id     uuid REFERENCES ticket_types (id),
    user_id            uuid,
    order_id           uuid,
    reservation_id     uuid REFERENCES reservations (id),
    -- identification
    ticket_number      text NOT NULL
                       DEFAULT 'TKT-' || upper(substr(md5(gen_random_uuid()::text), 1, 16)),
    qr_code            text,
    barcode            text,
    payment_id         text,
    -- pricing
    price_cents        bigint NOT NULL DEFAULT 0,
    price              numeric(12, 2) NOT NULL DEFAULT 0,
    face_value         numeric(12, 2),
    resale_price       numeric(12, 2),
    max_resale_price   numeric(12, 2),
    currency           char(3) NOT NULL DEFAULT 'USD',
    -- seating
    section            text,
    "row"              text,
    seat               text,
    seat_number        integer,
    -- status
    status             text NOT NULL DEFAULT 'available',
    status_reason      text,
    status_changed_by  uuid,
    status_changed_at  timestamptz,
    is_validated       boolean NOT NULL DEFAULT false,
    is_transferable    boolean NOT NULL DEFAULT true,
    transfer_count     integer NOT NULL DEFAULT 0,
    max_transfers      integer,
    scan_count         integer NOT NULL DEFAULT 0,
    last_scanned_at    timestamptz,
    -- NFT
    is_nft             boolean NOT NULL DEFAULT false,
    token_mint         text,
    wallet_address     text,
    minted_at          timestamptz,
    -- validity and timestamps
    valid_from         timestamptz,
    expires_at         timestamptz,
    purchased_at       timestamptz,
    validated_at       timestamptz,
    checked_in_at      timestamptz,
    metadata           jsonb NOT NULL DEFAULT '{}'::jsonb,
    search_vector      tsvector GENERATED ALWAYS AS (
        to_tsvector('simple'::regconfig,
            coalesce(ticket_number, '') || ' ' || coalesce(qr_code, '') || ' ' ||
            coalesce(barcode, '') || ' ' || coalesce(section, '') || ' ' ||
            coalesce("row", '') || ' ' || coalesce(seat, '') || ' ' ||
            coalesce(token_mint, '') || ' ' || coalesce(status, ''))
    ) STORED,
    version            integer NOT NULL DEFAULT 1,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    deleted_at         timestamptz
);
COMMENT ON COLUMN tickets.search_vector IS
    'Full-text search over number, codes, seat and mint; a generated column, always current.';
COMMENT ON COLUMN tickets.wallet_address IS 'The wallet holding the ticket NFT, once minted.';
CREATE INDEX idx_tickets_tenant_status ON tickets (tenant_id, status);
CREATE INDEX idx_tickets_user_status ON tickets (user_id, status);
CREATE INDEX idx_tickets_event ON tickets (event_id);
CREATE INDEX idx_tickets_ticket_type ON tickets (ticket_type_id);
CREATE INDEX idx_tickets_search_vector ON tickets USING gin (search_vector);

-- ---------------------------------------------------------------------------
-- ticket_transfers: the one definition (the seed's 001 table with 006's
-- columns folded in; its triggers are in 007)
-- ---------------------------------------------------------------------------
CREATE TABLE ticket_transfers (
    id                       uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id                uuid NOT NULL,
    ticket_id                uuid NOT NULL REFERENCES tickets (id),
    from_user_id             uuid,
    to_user_id               uuid,
    to_email                 text,
    from_wallet              text,
    to_wallet                text,
    transfer_code            text,
    acceptance_code          text,
    transfer_type            text NOT NULL DEFAULT 'gift',
    price_cents              bigint,
    message                  text,
    status                   text NOT NULL DEFAULT 'pending',
    expires_at               timestamptz,
    accepted_at              timestamptz,
    rejected_at              timestamptz,
    cancelled_at             timestamptz,
    completed_at             timestamptz,
    -- blockchain
    tx_signature             text,
    blockchain_confirmed     boolean NOT NULL DEFAULT false,
    blockchain_confirmed_at  timestamptz,
    version                  integer NOT NULL DEFAULT 1,
    created_at               timestamptz NOT NULL DEFAULT now(),
    updated_at               timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX idx_ticket_transfers_ticket ON ticket_transfers (ticket_id, created_at);
CREATE INDEX idx_ticket_transfers_tenant_status ON ticket_transfers (tenant_id, status);
CREATE INDEX idx_ticket_transfers_tx_signature ON ticket_transfers (tx_signature)
    WHERE tx_signature IS NOT NULL;

-- ---------------------------------------------------------------------------
-- ticket_validations
-- ---------------------------------------------------------------------------
CREATE TABLE ticket_validations (
    id                 uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id          uuid NOT NULL,
    ticket_id          uuid NOT NULL REFERENCES tickets (id),
    event_id           uuid,
    validated_by       uuid,
    validation_method  text NOT NULL DEFAULT 'qr',
    is_valid           boolean NOT NULL,
    failure_reason     text,
    gate               text,
    device_id          text,
    metadata           jsonb NOT NULL DEFAULT '{}'::jsonb,
    validated_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX idx_ticket_validations_ticket ON ticket_validations (ticket_id, validated_at DESC);

-- ---------------------------------------------------------------------------
-- refunds
-- ---------------------------------------------------------------------------
CREATE TABLE refunds (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id     uuid NOT NULL,
    order_id      uuid,
    ticket_id     uuid REFERENCES tickets (id),
    user_id       uuid,
    amount_cents  bigint NOT NULL,
    currency      char(3) NOT NULL DEFAULT 'USD',
    reason        text,
    status        text NOT NULL DEFAULT 'pending',
    processed_at  timestamptz,
    version       integer NOT NULL DEFAULT 1,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX idx_refunds_tenant_status ON refunds (tenant_id, status);
CREATE INDEX idx_refunds_order ON refunds (order_id);

-- ---------------------------------------------------------------------------
-- waitlist
-- ---------------------------------------------------------------------------
CREATE TABLE waitlist (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id       uuid NOT NULL,
    event_id        uuid NOT NULL,
    ticket_type_id  uuid REFERENCES ticket_types (id),
    user_id         uuid,
    email           text,
    quantity        integer NOT NULL DEFAULT 1,
    position        integer,
    status          text NOT NULL DEFAULT 'waiting',
    notified_at     timestamptz,
    expires_at      timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX idx_waitlist_event_status ON waitlist (event_id, status, created_at);

-- ---------------------------------------------------------------------------
-- ticket_price_history (written by a trigger on ticket_types.price_cents)
-- ---------------------------------------------------------------------------
CREATE TABLE ticket_price_history (
    id               bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    tenant_id        uuid NOT NULL,
    ticket_type_id   uuid NOT NULL REFERENCES ticket_types (id),
    old_price_cents  bigint,
    new_price_cents  bigint NOT NULL,
    changed_by       uuid,
    reason           text,
    changed_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX idx_ticket_price_history_type ON ticket_price_history (ticket_type_id, changed_at);

-- ---------------------------------------------------------------------------
-- ticket_holds
-- ---------------------------------------------------------------------------
CREATE TABLE ticket_holds (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id       uuid NOT NULL,
    event_id        uuid NOT NULL,
    ticket_type_id  uuid REFERENCES ticket_types (id),
    quantity        integer NOT NULL DEFAULT 1,
    reason          text,
    held_by         uuid,
    status          text NOT NULL DEFAULT 'active',
    expires_at      timestamptz,
    released_at     timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX idx_ticket_holds_event_status ON ticket_holds (event_id, status);

-- ---------------------------------------------------------------------------
-- ticket_bundles, ticket_bundle_items
-- ---------------------------------------------------------------------------
CREATE TABLE ticket_bundles (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id    uuid NOT NULL,
    event_id     uuid,
    name         text NOT NULL,
    description  text,
    price_cents  bigint NOT NULL DEFAULT 0,
    currency     char(3) NOT NULL DEFAULT 'USD',
    status       text NOT NULL DEFAULT 'active',
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE ticket_bundle_items (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id       uuid NOT NULL,
    bundle_id       uuid NOT NULL REFERENCES ticket_bundles (id) ON DELETE CASCADE,
    ticket_type_id  uuid NOT NULL REFERENCES ticket_types (id),
    quantity        integer NOT NULL DEFAULT 1,
    created_at      timestamptz NOT NULL DEFAULT now()
);

-- ---------------------------------------------------------------------------
-- ticket_audit_log
-- ---------------------------------------------------------------------------
CREATE TABLE ticket_audit_log (
    id          bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    tenant_id   uuid NOT NULL,
    ticket_id   uuid REFERENCES tickets (id),
    action      text NOT NULL,
    actor_id    uuid,
    actor_type  text,
    old_values  jsonb,
    new_values  jsonb,
    ip_address  inet,
    user_agent  text,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX idx_ticket_audit_log_ticket ON ticket_audit_log (ticket_id, created_at);

-- ---------------------------------------------------------------------------
-- ticket_notifications
-- ---------------------------------------------------------------------------
CREATE TABLE ticket_notifications (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id   uuid NOT NULL,
    ticket_id   uuid REFERENCES tickets (id),
    user_id     uuid,
    type        text NOT NULL,
    channel     text NOT NULL DEFAULT 'email',
    status      text NOT NULL DEFAULT 'pending',
    payload     jsonb NOT NULL DEFAULT '{}'::jsonb,
    sent_at     timestamptz,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX idx_ticket_notifications_pending ON ticket_notifications (created_at)
    WHERE status = 'pending';

-- ---------------------------------------------------------------------------
-- discounts, order_discounts
-- ---------------------------------------------------------------------------
CREATE TABLE discounts (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id      uuid NOT NULL,
    event_id       uuid,
    code           text NOT NULL,
    description    text,
    discount_type  text NOT NULL DEFAULT 'percentage',
    value          numeric(12, 2) NOT NULL,
    max_uses       integer,
    used_count     integer NOT NULL DEFAULT 0,
    valid_from     timestamptz,
    valid_until    timestamptz,
    is_active      boolean NOT NULL DEFAULT true,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE order_discounts (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id     uuid NOT NULL,
    order_id      uuid NOT NULL,
    discount_id   uuid NOT NULL REFERENCES discounts (id),
    amount_cents  bigint NOT NULL DEFAULT 0,
    created_at    timestamptz NOT NULL DEFAULT now()
);

-- ---------------------------------------------------------------------------
-- outbox: the one documented shape
-- ---------------------------------------------------------------------------
CREATE TABLE outbox (
    id              bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    tenant_id       uuid NOT NULL,
    aggregate_type  text NOT NULL,
    aggregate_id    uuid NOT NULL,
    event_type      text NOT NULL,
    payload         jsonb NOT NULL DEFAULT '{}'::jsonb,
    headers         jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at      timestamptz NOT NULL DEFAULT now(),
    available_at    timestamptz NOT NULL DEFAULT now(),
    processed_at    timestamptz,
    attempts        integer NOT NULL DEFAULT 0,
    last_error      text
);
CREATE INDEX idx_outbox_unprocessed ON outbox (available_at, id) WHERE processed_at IS NULL;
CREATE INDEX idx_outbox_aggregate ON outbox (aggregate_type, aggregate_id, id);
COMMENT ON TABLE outbox IS
    'Transactional outbox: events for other services, written in the same transaction as '
    'the change they describe, delivered at least once in id order per aggregate. A row is '
    'pending while processed_at IS NULL; consumers lock a batch (FOR UPDATE SKIP LOCKED) '
    'where available_at <= now(), publish, then set processed_at; on failure they increment '
    'attempts, store last_error and push available_at back.';
COMMENT ON COLUMN outbox.id IS 'Monotonic id: the delivery order.';
COMMENT ON COLUMN outbox.tenant_id IS 'Tenant the event belongs to (RLS scoped).';
COMMENT ON COLUMN outbox.aggregate_type IS 'Kind of entity, e.g. ticket, ticket_transfer, pending_transaction.';
COMMENT ON COLUMN outbox.aggregate_id IS 'Id of the entity the event is about.';
COMMENT ON COLUMN outbox.event_type IS 'Dotted event name, e.g. ticket.minted, ticket.transferred.';
COMMENT ON COLUMN outbox.payload IS 'Event body (JSON object), the contract with the consumer.';
COMMENT ON COLUMN outbox.headers IS 'Delivery metadata: trace ids, schema version.';
COMMENT ON COLUMN outbox.created_at IS 'When the event was recorded.';
COMMENT ON COLUMN outbox.available_at IS 'Not delivered before this time (retry backoff).';
COMMENT ON COLUMN outbox.processed_at IS 'When delivery succeeded; NULL while pending.';
COMMENT ON COLUMN outbox.attempts IS 'Delivery attempts so far.';
COMMENT ON COLUMN outbox.last_error IS 'Error of the last failed delivery attempt.';

-- ---------------------------------------------------------------------------
-- reservation_history (written by a trigger on reservations.status)
-- ---------------------------------------------------------------------------
CREATE TABLE reservation_history (
    id               bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    tenant_id        uuid NOT NULL,
    reservation_id   uuid NOT NULL REFERENCES reservations (id) ON DELETE CASCADE,
    previous_status  text,
    new_status       text NOT NULL,
    changed_by       uuid,
    reason           text,
    created_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX idx_reservation_history_reservation ON reservation_history (reservation_id, id);

-- ---------------------------------------------------------------------------
-- webhook_nonces: replay protection for incoming webhooks. Nonces are checked
-- before any tenant is known, so this table is not tenant-scoped.
-- ---------------------------------------------------------------------------
CREATE TABLE webhook_nonces (
    nonce        text PRIMARY KEY,
    source       text NOT NULL,
    received_at  timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL DEFAULT now() + interval '24 hours'
);
CREATE INDEX idx_webhook_nonces_expires ON webhook_nonces (expires_at);

-- ---------------------------------------------------------------------------
-- Session variables read by the functions below (all optional, all text):
--   app.current_tenant_id  uuid of the tenant (RLS)
--   app.current_user_id    uuid of the acting user
--   app.current_user_role  'admin' or 'superadmin' for tenant administrators
--   app.actor_type         user | system | admin | service (default system)
-- ---------------------------------------------------------------------------
CREATE FUNCTION current_setting_uuid(p_name text) RETURNS uuid
LANGUAGE sql STABLE AS $$
    SELECT NULLIF(current_setting(p_name, true), '')::uuid
$$;
COMMENT ON FUNCTION current_setting_uuid(text) IS
    'The uuid in session variable p_name, NULL when unset or empty.';

-- ---------------------------------------------------------------------------
-- Reservation management
-- ---------------------------------------------------------------------------
CREATE FUNCTION update_ticket_availability_on_reservation() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.status NOT IN ('pending', 'active') THEN
        RETURN NEW;
    END IF;
    UPDATE ticket_types
       SET available_quantity = available_quantity - NEW.quantity,
           reserved_quantity = reserved_quantity + NEW.quantity
     WHERE id = NEW.ticket_type_id
       AND available_quantity >= NEW.quantity;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'not enough tickets available for ticket type % (requested %)',
            NEW.ticket_type_id, NEW.quantity
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END;
$$;
COMMENT ON FUNCTION update_ticket_availability_on_reservation() IS
    'AFTER INSERT trigger on reservations: a holding reservation (pending/active) takes its '
    'quantity from ticket_types.available_quantity into reserved_quantity; refuses when not '
    'enough is available.';

CREATE FUNCTION release_ticket_availability() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    v_old reservations := OLD;
    v_was_holding boolean := OLD.status IN ('pending', 'active');
BEGIN
    IF TG_OP = 'DELETE' THEN
        IF v_was_holding THEN
            UPDATE ticket_types
               SET available_quantity = available_quantity + v_old.quantity,
                   reserved_quantity = greatest(reserved_quantity - v_old.quantity, 0)
             WHERE id = v_old.ticket_type_id;
        END IF;
        RETURN OLD;
    END IF;

    IF v_was_holding AND NEW.status IN ('expired', 'cancelled', 'released') THEN
        UPDATE ticket_types
           SET available_quantity = available_quantity + OLD.quantity,
               reserved_quantity = greatest(reserved_quantity - OLD.quantity, 0)
         WHERE id = OLD.ticket_type_id;
    ELSIF v_was_holding AND NEW.status = 'confirmed' THEN
        UPDATE ticket_types
           SET reserved_quantity = greatest(reserved_quantity - OLD.quantity, 0),
               sold_quantity = sold_quantity + OLD.quantity
         WHERE id = OLD.ticket_type_id;
    END IF;

    IF NEW.status IS DISTINCT FROM OLD.status THEN
        INSERT INTO reservation_history (tenant_id, reservation_id, previous_status, new_status,
                                         changed_by, reason)
        VALUES (NEW.tenant_id, NEW.id, OLD.status, NEW.status,
                current_setting_uuid('app.current_user_id'), NEW.release_reason);
    END IF;
    RETURN NEW;
END;
$$;
COMMENT ON FUNCTION release_ticket_availability() IS
    'AFTER UPDATE OF status / DELETE trigger on reservations: a holding reservation that '
    'expires, is cancelled or released (or deleted) gives its quantity back to '
    'available_quantity; one that is confirmed moves it to sold_quantity. Records the change '
    'in reservation_history.';

CREATE FUNCTION reservation_before_update() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := now();
    IF NEW.status IS DISTINCT FROM OLD.status
       AND NEW.status IN ('expired', 'cancelled', 'released') AND NEW.released_at IS NULL THEN
        NEW.released_at := now();
    END IF;
    RETURN NEW;
END;
$$;

CREATE TRIGGER trg_reservations_before_update BEFORE UPDATE ON reservations
    FOR EACH ROW EXECUTE FUNCTION reservation_before_update();
CREATE TRIGGER trg_reservations_take_availability AFTER INSERT ON reservations
    FOR EACH ROW EXECUTE FUNCTION update_ticket_availability_on_reservation();
CREATE TRIGGER trg_reservations_release_availability
    AFTER UPDATE OF status OR DELETE ON reservations
    FOR EACH ROW EXECUTE FUNCTION release_ticket_availability();

-- ---------------------------------------------------------------------------
-- Price history
-- ---------------------------------------------------------------------------
CREATE FUNCTION log_ticket_type_price_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO ticket_price_history (tenant_id, ticket_type_id, old_price_cents,
                                      new_price_cents, changed_by, reason)
    VALUES (NEW.tenant_id, NEW.id, OLD.price_cents, NEW.price_cents,
            current_setting_uuid('app.current_user_id'),
            NULLIF(current_setting('app.status_change_reason', true), ''));
    RETURN NEW;
END;
$$;
CREATE TRIGGER trg_ticket_types_price_history AFTER UPDATE OF price_cents ON ticket_types
    FOR EACH ROW WHEN (OLD.price_cents IS DISTINCT FROM NEW.price_cents)
    EXECUTE FUNCTION log_ticket_type_price_change();

-- ---------------------------------------------------------------------------
-- User stats
-- ---------------------------------------------------------------------------
CREATE FUNCTION update_user_ticket_stats() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.user_id IS NULL OR NEW.status <> 'sold' THEN
        RETURN NEW;
    END IF;
    IF TG_OP = 'UPDATE' AND OLD.status NOT IN ('available', 'reserved') THEN
        RETURN NEW;
    END IF;
    UPDATE users
       SET ticket_purchase_count = ticket_purchase_count + 1,
           total_spent_cents = total_spent_cents + NEW.price_cents,
           last_purchase_at = now()
     WHERE id = NEW.user_id;
    RETURN NEW;
END;
$$;
COMMENT ON FUNCTION update_user_ticket_stats() IS
    'AFTER INSERT / UPDATE OF status trigger on tickets: when a ticket is sold to a user '
    '(inserted as sold, or moved from available/reserved to sold), increments the user''s '
    'ticket_purchase_count and total_spent_cents and stamps last_purchase_at.';

CREATE FUNCTION update_user_events_attended() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.user_id IS NULL OR NEW.status <> 'checked_in' OR OLD.status = 'checked_in' THEN
        RETURN NEW;
    END IF;
    -- One event counts once, however many of its tickets the user checks in.
    IF EXISTS (
        SELECT 1 FROM tickets t
         WHERE t.user_id = NEW.user_id AND t.event_id = NEW.event_id AND t.id <> NEW.id
           AND t.status IN ('checked_in', 'used')
    ) THEN
        RETURN NEW;
    END IF;
    UPDATE users SET events_attended = events_attended + 1 WHERE id = NEW.user_id;
    RETURN NEW;
END;
$$;
COMMENT ON FUNCTION update_user_events_attended() IS
    'AFTER UPDATE OF status trigger on tickets: the first check-in of a user at an event '
    'increments users.events_attended.';

CREATE TRIGGER trg_tickets_user_ticket_stats AFTER INSERT OR UPDATE OF status ON tickets
    FOR EACH ROW EXECUTE FUNCTION update_user_ticket_stats();
CREATE TRIGGER trg_tickets_user_events_attended AFTER UPDATE OF status ON tickets
    FOR EACH ROW EXECUTE FUNCTION update_user_events_attended();

-- updated_at maintenance
DO $$
DECLARE
    v_table text;
BEGIN
    FOREACH v_table IN ARRAY ARRAY[
        'ticket_types', 'tickets', 'ticket_transfers', 'refunds', 'waitlist', 'ticket_holds',
        'ticket_bundles', 'discounts'
    ] LOOP
        EXECUTE format(
            'CREATE TRIGGER trg_%s_updated_at BEFORE UPDATE ON %I '
            'FOR EACH ROW EXECUTE FUNCTION set_updated_at()', v_table, v_table);
    END LOOP;
END;
$$;

-- ---------------------------------------------------------------------------
-- Row-level security
-- ---------------------------------------------------------------------------
DO $$
DECLARE
    v_table text;
BEGIN
    FOREACH v_table IN ARRAY ARRAY[
        'ticket_types', 'reservations', 'ticket_transfers', 'ticket_validations',
        'refunds', 'waitlist', 'ticket_price_history', 'ticket_holds', 'ticket_bundles',
        'ticket_bundle_items', 'ticket_audit_log', 'ticket_notifications', 'discounts',
        'order_discounts', 'outbox', 'reservation_history'
    ] LOOP
        PERFORM enable_tenant_isolation(v_table::regclass);
    END LOOP;
END;
$$;

-- tickets: the tenant boundary is RESTRICTIVE (it always applies); inside it the
-- permissive policies below decide who sees what. A caller that is not an end user
-- (app.actor_type unset, 'system' or 'service': the platform's own services) or a
-- tenant admin sees all of the tenant's tickets; an end user (actor_type 'user')
-- sees their own tickets and, as a venue owner, the tickets of their venues' events.
ALTER TABLE tickets ENABLE ROW LEVEL SECURITY;
CREATE POLICY tickets_tenant_isolation ON tickets AS RESTRICTIVE
    USING (tenant_id = NULLIF(current_setting('app.current_tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = NULLIF(current_setting('app.current_tenant_id', true), '')::uuid);

CREATE POLICY tickets_view_own ON tickets FOR SELECT
    USING (user_id = current_setting_uuid('app.current_user_id'));

CREATE POLICY tickets_update_own ON tickets FOR UPDATE
    USING (user_id = current_setting_uuid('app.current_user_id'))
    WITH CHECK (user_id = current_setting_uuid('app.current_user_id'));

CREATE POLICY tickets_venue_owner_view ON tickets FOR SELECT
    USING (EXISTS (
        SELECT 1 FROM events e JOIN venues v ON v.id = e.venue_id
         WHERE e.id = tickets.event_id
           AND v.created_by = current_setting_uuid('app.current_user_id')));

CREATE POLICY tickets_admin_all ON tickets
    USING (coalesce(NULLIF(current_setting('app.current_user_role', true), ''), '')
               IN ('admin', 'superadmin')
           OR coalesce(NULLIF(current_setting('app.actor_type', true), ''), 'system')
               IN ('system', 'service', 'admin'))
    WITH CHECK (coalesce(NULLIF(current_setting('app.current_user_role', true), ''), '')
               IN ('admin', 'superadmin')
           OR coalesce(NULLIF(current_setting('app.actor_type', true), ''), 'system')
               IN ('system', 'service', 'admin'));

COMMENT ON POLICY tickets_tenant_isolation ON tickets IS
    'Tenant boundary (restrictive): only rows of app.current_tenant_id, whatever else allows.';
COMMENT ON POLICY tickets_view_own ON tickets IS 'End users see their own tickets.';
COMMENT ON POLICY tickets_update_own ON tickets IS 'End users update their own tickets.';
COMMENT ON POLICY tickets_venue_owner_view ON tickets IS
    'Venue owners (venues.created_by) see the tickets of their venues'' events.';
COMMENT ON POLICY tickets_admin_all ON tickets IS
    'Tenant admins (app.current_user_role admin/superadmin) and non-user actors '
    '(app.actor_type system/service/admin, system when unset) have full access.';
