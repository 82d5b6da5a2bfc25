-- 007: ticket state machine (the seed's 006_add_ticket_state_machine). The twelve
-- ticket statuses (CHECK in 011): available, reserved, sold, minted, active,
-- transferred, checked_in, used, revoked, refunded, expired, cancelled.
-- ticket_transfers is defined once, in 002; its triggers live here.

-- ---------------------------------------------------------------------------
-- tickets: status bookkeeping
-- ---------------------------------------------------------------------------
CREATE FUNCTION ticket_status_change_trigger() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    v_actor text := coalesce(NULLIF(current_setting('app.actor_type', true), ''), 'system');
BEGIN
    IF NEW.status IS NOT DISTINCT FROM OLD.status THEN
        RETURN NEW;
    END IF;
    -- Final states stay final; only an admin actor may correct one.
    IF OLD.status IN ('used', 'revoked', 'refunded', 'expired', 'cancelled') AND v_actor <> 'admin' THEN
        RAISE EXCEPTION 'ticket % is %, a final status; it cannot become %',
            OLD.id, OLD.status, NEW.status
            USING ERRCODE = 'check_violation';
    END IF;
    NEW.status_changed_at := now();
    IF NEW.status_changed_by IS NOT DISTINCT FROM OLD.status_changed_by THEN
        NEW.status_changed_by := current_setting_uuid('app.current_user_id');
    END IF;
    IF NEW.status_reason IS NOT DISTINCT FROM OLD.status_reason THEN
        NEW.status_reason := NULLIF(current_setting('app.status_change_reason', true), '');
    END IF;
    IF NEW.status = 'checked_in' AND NEW.checked_in_at IS NULL THEN
        NEW.checked_in_at := now();
    END IF;
    IF NEW.status IN ('checked_in', 'used') THEN
        NEW.is_validated := true;
        NEW.validated_at := coalesce(NEW.validated_at, now());
    END IF;
    IF NEW.status = 'minted' THEN
        NEW.is_nft := true;
        NEW.minted_at := coalesce(NEW.minted_at, now());
    END IF;
    IF NEW.status = 'sold' AND NEW.purchased_at IS NULL THEN
        NEW.purchased_at := now();
    END IF;
    RETURN NEW;
END;
$$;
COMMENT ON FUNCTION ticket_status_change_trigger() IS
    'BEFORE UPDATE OF status trigger on tickets: refuses leaving a final status (used, revoked, '
    'refunded, expired, cancelled) unless app.actor_type is admin; stamps status_changed_at, '
    'status_changed_by (app.current_user_id) and status_reason (app.status_change_reason) '
    'unless the update sets them, and the timestamps/flags the new status implies.';

CREATE TRIGGER trg_tickets_status_change BEFORE UPDATE OF status ON tickets
    FOR EACH ROW EXECUTE FUNCTION ticket_status_change_trigger();

-- ---------------------------------------------------------------------------
-- ticket_transfers triggers
-- ---------------------------------------------------------------------------
CREATE FUNCTION validate_ticket_transfer() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    v_ticket tickets;
BEGIN
    SELECT * INTO v_ticket FROM tickets WHERE id = NEW.ticket_id;
    IF NOT FOUND THEN
        RETURN NEW;  -- the foreign key reports it
    END IF;
    IF NOT v_ticket.is_transferable THEN
        RAISE EXCEPTION 'ticket % is not transferable', NEW.ticket_id
            USING ERRCODE = 'check_violation';
    END IF;
    IF v_ticket.max_transfers IS NOT NULL AND v_ticket.transfer_count >= v_ticket.max_transfers THEN
        RAISE EXCEPTION 'ticket % reached its maximum of % transfers',
            NEW.ticket_id, v_ticket.max_transfers
            USING ERRCODE = 'check_violation';
    END IF;
    IF v_ticket.status IN ('checked_in', 'used', 'revoked', 'refunded', 'expired', 'cancelled') THEN
        RAISE EXCEPTION 'ticket % is %, it cannot be transferred', NEW.ticket_id, v_ticket.status
            USING ERRCODE = 'check_violation';
    END IF;
    IF NEW.from_user_id IS NULL THEN
        NEW.from_user_id := v_ticket.user_id;
    END IF;
    RETURN NEW;
END;
$$;
COMMENT ON FUNCTION validate_ticket_transfer() IS
    'BEFORE INSERT trigger on ticket_transfers: the ticket must be transferable, under its '
    'max_transfers and not in a used/final status; from_user_id defaults to the holder.';

CREATE FUNCTION stamp_ticket_transfer() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.status IS DISTINCT FROM OLD.status THEN
        CASE NEW.status
            WHEN 'accepted' THEN NEW.accepted_at := coalesce(NEW.accepted_at, now());
            WHEN 'rejected' THEN NEW.rejected_at := coalesce(NEW.rejected_at, now());
            WHEN 'cancelled' THEN NEW.cancelled_at := coalesce(NEW.cancelled_at, now());
            WHEN 'completed' THEN NEW.completed_at := coalesce(NEW.completed_at, now());
            ELSE NULL;
        END CASE;
    END IF;
    IF NEW.blockchain_confirmed AND NOT OLD.blockchain_confirmed THEN
        NEW.blockchain_confirmed_at := coalesce(NEW.blockchain_confirmed_at, now());
    END IF;
    RETURN NEW;
END;
$$;
COMMENT ON FUNCTION stamp_ticket_transfer() IS
    'BEFORE UPDATE trigger on ticket_transfers: stamps accepted_at / rejected_at / cancelled_at / '
    'completed_at and blockchain_confirmed_at when they happen.';

CREATE FUNCTION apply_completed_transfer() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE tickets
       SET user_id = coalesce(NEW.to_user_id, user_id),
           wallet_address = coalesce(NEW.to_wallet, wallet_address),
           transfer_count = transfer_count + 1,
           status = CASE WHEN status IN ('sold', 'minted', 'active', 'transferred')
                         THEN 'transferred' ELSE status END,
           status_reason = 'transfer ' || NEW.id::text || ' completed'
     WHERE id = NEW.ticket_id;
    RETURN NEW;
END;
$$;
COMMENT ON FUNCTION apply_completed_transfer() IS
    'AFTER UPDATE OF status trigger on ticket_transfers: a completed transfer hands the ticket to '
    'the recipient (user, wallet), counts it and marks the ticket transferred.';

CREATE TRIGGER trg_ticket_transfers_validate BEFORE INSERT ON ticket_transfers
    FOR EACH ROW EXECUTE FUNCTION validate_ticket_transfer();
CREATE TRIGGER trg_ticket_transfers_stamp BEFORE UPDATE ON ticket_transfers
    FOR EACH ROW EXECUTE FUNCTION stamp_ticket_transfer();
CREATE TRIGGER trg_ticket_transfers_complete AFTER UPDATE OF status ON ticket_transfers
    FOR EACH ROW WHEN (NEW.status = 'completed' AND OLD.status IS DISTINCT FROM 'completed')
    EXECUTE FUNCTION apply_completed_transfer();

-- ---------------------------------------------------------------------------
-- Queries
-- ---------------------------------------------------------------------------
CREATE FUNCTION can_check_in_ticket(
    p_ticket_id    uuid,
    p_event_start  timestamptz,
    p_event_end    timestamptz,
    p_early_entry  interval DEFAULT interval '2 hours'
) RETURNS TABLE (can_check_in boolean, reason text)
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_ticket tickets;
    v_now    timestamptz := now();
BEGIN
    SELECT * INTO v_ticket FROM tickets WHERE id = p_ticket_id AND deleted_at IS NULL;
    IF NOT FOUND THEN
        RETURN QUERY SELECT false, 'ticket not found';
    ELSIF v_ticket.status = 'checked_in' OR v_ticket.status = 'used' THEN
        RETURN QUERY SELECT false, 'ticket already ' || v_ticket.status;
    ELSIF v_ticket.status NOT IN ('sold', 'minted', 'active', 'transferred') THEN
        RETURN QUERY SELECT false, 'ticket is ' || v_ticket.status;
    ELSIF v_now < p_event_start - p_early_entry THEN
        RETURN QUERY SELECT false, 'check-in has not opened yet';
    ELSIF v_now > p_event_end THEN
        RETURN QUERY SELECT false, 'event has ended';
    ELSIF v_ticket.valid_from IS NOT NULL AND v_now < v_ticket.valid_from THEN
        RETURN QUERY SELECT false, 'ticket is not valid yet';
    ELSIF v_ticket.expires_at IS NOT NULL AND v_now > v_ticket.expires_at THEN
        RETURN QUERY SELECT false, 'ticket has expired';
    ELSE
        RETURN QUERY SELECT true, 'ok';
    END IF;
END;
$$;
COMMENT ON FUNCTION can_check_in_ticket(uuid, timestamptz, timestamptz, interval) IS
    'Whether the ticket may check in now: a valid status (sold, minted, active, transferred), '
    'not already checked in, and now() within [p_event_start - p_early_entry, p_event_end] '
    '(both edges inclusive) and the ticket''s own valid_from/expires_at. reason says why not.';

CREATE FUNCTION get_ticket_transfer_history(p_ticket_id uuid)
RETURNS TABLE (
    transfer_id uuid, sequence bigint, from_user_id uuid, to_user_id uuid, to_email text,
    status text, tx_signature text, blockchain_confirmed boolean, created_at timestamptz,
    completed_at timestamptz
)
LANGUAGE sql STABLE AS $$
    SELECT t.id, row_number() OVER (ORDER BY t.created_at, t.id), t.from_user_id, t.to_user_id,
           t.to_email, t.status, t.tx_signature, t.blockchain_confirmed, t.created_at,
           t.completed_at
      FROM ticket_transfers t
     WHERE t.ticket_id = p_ticket_id
     ORDER BY t.created_at, t.id
$$;
COMMENT ON FUNCTION get_ticket_transfer_history(uuid) IS
    'The ticket''s transfer chain, oldest first (sequence 1 = first transfer).';
