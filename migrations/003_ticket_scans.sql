-- 003: scan log and duplicate-scan detection (the seed's 002_add_ticket_scans).

CREATE TABLE ticket_scans (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id     uuid NOT NULL,
    ticket_id     uuid NOT NULL REFERENCES tickets (id),
    event_id      uuid,
    scanned_at    timestamptz NOT NULL DEFAULT clock_timestamp(),
    scanned_by    uuid,
    device_id     text,
    location      text,
    result        text NOT NULL,
    is_duplicate  boolean NOT NULL DEFAULT false,
    reason        text,
    metadata      jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX idx_ticket_scans_duplicate_detection ON ticket_scans (ticket_id, scanned_at DESC);
CREATE INDEX idx_ticket_scans_tenant_event ON ticket_scans (tenant_id, event_id, scanned_at);
COMMENT ON COLUMN ticket_scans.result IS
    'accepted: the scan admitted the ticket; duplicate: an accepted scan happened within the '
    'window; otherwise the refusal (invalid, wrong_event, expired, revoked, not_found).';

SELECT enable_tenant_isolation('ticket_scans');

CREATE FUNCTION check_duplicate_scan(p_ticket_id uuid, p_time_window_seconds integer DEFAULT 300)
RETURNS TABLE (is_duplicate boolean, last_scan_at timestamptz, scan_count integer)
LANGUAGE sql STABLE AS $$
    SELECT coalesce(max(s.scanned_at) >= clock_timestamp() - make_interval(secs => p_time_window_seconds),
                    false),
           max(s.scanned_at),
           count(*)::integer
      FROM ticket_scans s
     WHERE s.ticket_id = p_ticket_id AND s.result = 'accepted'
$$;
COMMENT ON FUNCTION check_duplicate_scan(uuid, integer) IS
    'is_duplicate: an accepted scan of the ticket happened within the last p_time_window_seconds; '
    'last_scan_at: the latest accepted scan (NULL if none); scan_count: accepted scans in total.';

CREATE FUNCTION record_scan_attempt(
    p_ticket_id            uuid,
    p_result               text DEFAULT 'accepted',
    p_scanned_by           uuid DEFAULT NULL,
    p_device_id            text DEFAULT NULL,
    p_location             text DEFAULT NULL,
    p_reason               text DEFAULT NULL,
    p_metadata             jsonb DEFAULT '{}'::jsonb,
    p_time_window_seconds  integer DEFAULT 300
)
RETURNS TABLE (scan_id uuid, result text, is_duplicate boolean, scan_count integer)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    v_ticket    tickets;
    v_check     record;
    v_result    text := p_result;
    v_duplicate boolean := false;
    v_id        uuid;
BEGIN
    -- Serializes concurrent scans of one ticket, so two gates cannot both admit it.
    SELECT * INTO v_ticket FROM tickets WHERE id = p_ticket_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'ticket % not found', p_ticket_id USING ERRCODE = 'no_data_found';
    END IF;

    SELECT * INTO v_check FROM check_duplicate_scan(p_ticket_id, p_time_window_seconds);
    IF v_result = 'accepted' AND v_check.is_duplicate THEN
        v_result := 'duplicate';
        v_duplicate := true;
    END IF;

    INSERT INTO ticket_scans (tenant_id, ticket_id, event_id, scanned_by, device_id, location,
                              result, is_duplicate, reason, metadata)
    VALUES (v_ticket.tenant_id, p_ticket_id, v_ticket.event_id,
            coalesce(p_scanned_by, current_setting_uuid('app.current_user_id')),
            p_device_id, p_location, v_result, v_duplicate,
            coalesce(p_reason, CASE WHEN v_duplicate THEN 'scanned within the duplicate window' END),
            coalesce(p_metadata, '{}'::jsonb))
    RETURNING id INTO v_id;

    IF v_result = 'accepted' THEN
        UPDATE tickets SET scan_count = scan_count + 1, last_scanned_at = clock_timestamp()
         WHERE id = p_ticket_id;
    END IF;

    RETURN QUERY SELECT v_id, v_result, v_duplicate,
                        v_check.scan_count + CASE WHEN v_result = 'accepted' THEN 1 ELSE 0 END;
END;
$$;
COMMENT ON FUNCTION record_scan_attempt(uuid, text, uuid, text, text, text, jsonb, integer) IS
    'Logs one scan of a ticket with its context. An accepted scan within the duplicate window '
    'of a previous accepted one is stored as result duplicate. Accepted scans bump '
    'tickets.scan_count. Returns the scan id, the stored result, whether it was a duplicate and '
    'the accepted-scan count after it.';
