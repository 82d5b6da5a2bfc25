-- Triggers fire only when the columns their functions read change; pending_transactions keeps
-- room on its pages for updates that change no indexed column.
--
-- Each trigger below keeps its name, timing, events and column list; a WHEN clause is added
-- that holds whenever its function would have any effect, derived from the function's body
-- (unchanged). When the clause is false the function would have returned at once: nothing it
-- does is lost, and an AFTER trigger whose clause is false is not even queued. Per mint the
-- worker updates a ticket (sold -> minted, mint, wallet) and its attempt (pending ->
-- confirming -> confirmed, and its lease); only the triggers that have something to do run.
--
-- tickets
--   trg_tickets_status_change (BEFORE UPDATE OF status): ticket_status_change_trigger returns
--     NEW untouched when NEW.status IS NOT DISTINCT FROM OLD.status, its first statement.
--     WHEN: the status changes. It is the first BEFORE trigger by name, so NEW is the row as
--     the statement wrote it, as the function saw it.
--   trg_tickets_user_events_attended (AFTER UPDATE OF status): update_user_events_attended
--     returns when NEW.user_id IS NULL OR NEW.status <> 'checked_in' OR OLD.status =
--     'checked_in' (status is NOT NULL). WHEN: the negation; the function still checks the
--     user's other tickets of the event when it runs.
--   trg_tickets_user_ticket_stats (AFTER INSERT OR UPDATE OF status): update_user_ticket_stats
--     returns when NEW.user_id IS NULL OR NEW.status <> 'sold', and on an update also when
--     OLD.status is not available or reserved. A WHEN clause of an INSERT trigger cannot
--     read OLD, so the trigger becomes two on the same function, each with the negation for
--     its event: trg_tickets_user_ticket_stats (AFTER UPDATE OF status; the name keeps its
--     place among the AFTER UPDATE triggers) and trg_tickets_user_ticket_stats_insert (AFTER
--     INSERT, the only AFTER INSERT trigger on tickets). Whoever disables the first by name
--     for a bulk load must now disable both.
--   trg_tickets_log_status_change already fires only when the status changes (012), and
--   trg_tickets_updated_at stamps every update: both stay as they are.
--
--   search_vector is a stored generated column, not a trigger. PostgreSQL recomputes stored
--   generated columns on every UPDATE of a table with any BEFORE ROW UPDATE trigger, whatever
--   its WHEN clause (trg_tickets_updated_at must fire on every update), so no clause here can
--   spare it; a vector recomputed to the same value leaves the GIN index and HOT alone. A
--   mint changes two of its columns (token_mint, status), so a mint rebuilds it in any case.
--
-- pending_transactions
--   trg_pending_transactions_spend (AFTER UPDATE OF status, WHEN the status changes):
--     chainworker_spend_settle releases a reservation only when the attempt leaves pending or
--     confirming for another status, and charges only when the new status paid more than the
--     old (chainworker_attempt_paid is more than 0 only for confirmed and failed). So it has
--     nothing to do when the new status is live (pending -> confirming, every attempt seen
--     before it is confirmed). WHEN: the status changes, the new one is not live, and the old
--     one was live or the new one is confirmed or failed.
--   trg_pending_transactions_updated_at stamps every update; trg_pending_transactions_spend_
--   fixed already fires only when what it guards changes (109).
--
-- pending_transactions: fillfactor 75. The confirmation loop's claim renews an attempt's
-- lease (lease_owner, lease_until; updated_at by the trigger) when it first takes it and then
-- when less than half is left; rebroadcasts set last_rebroadcast_at and send_count. None of
-- these columns is indexed or in an index's predicate (the indexes are on id, status,
-- submitted_at, last_valid_block_height, ticket_id, created_at, request_id, tx_signature and
-- tenant_id, with status in the predicates), so these updates are HOT-eligible: no index
-- entry is written, if the new row version fits on the page of the old one. With pages
-- filled to 100% by inserts it mostly did not, and each renewal wrote a new entry in every
-- index. Inserts now leave a quarter of each page free. ALTER TABLE ... SET (fillfactor)
-- applies to pages filled from now on: existing pages keep what they hold until rewritten
-- (VACUUM FULL, CLUSTER or pg_repack), which this migration does not do.

DROP TRIGGER IF EXISTS trg_tickets_status_change ON tickets;
CREATE TRIGGER trg_tickets_status_change BEFORE UPDATE OF status ON tickets
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION ticket_status_change_trigger();

DROP TRIGGER IF EXISTS trg_tickets_user_events_attended ON tickets;
CREATE TRIGGER trg_tickets_user_events_attended AFTER UPDATE OF status ON tickets
    FOR EACH ROW
    WHEN (NEW.user_id IS NOT NULL AND NEW.status = 'checked_in'
          AND OLD.status IS DISTINCT FROM 'checked_in')
    EXECUTE FUNCTION update_user_events_attended();

DROP TRIGGER IF EXISTS trg_tickets_user_ticket_stats ON tickets;
DROP TRIGGER IF EXISTS trg_tickets_user_ticket_stats_insert ON tickets;
CREATE TRIGGER trg_tickets_user_ticket_stats AFTER UPDATE OF status ON tickets
    FOR EACH ROW
    WHEN (NEW.user_id IS NOT NULL AND NEW.status = 'sold'
          AND OLD.status IN ('available', 'reserved'))
    EXECUTE FUNCTION update_user_ticket_stats();
CREATE TRIGGER trg_tickets_user_ticket_stats_insert AFTER INSERT ON tickets
    FOR EACH ROW WHEN (NEW.user_id IS NOT NULL AND NEW.status = 'sold')
    EXECUTE FUNCTION update_user_ticket_stats();

DROP TRIGGER IF EXISTS trg_pending_transactions_spend ON pending_transactions;
CREATE TRIGGER trg_pending_transactions_spend AFTER UPDATE OF status ON pending_transactions
    FOR EACH ROW
    WHEN (OLD.status IS DISTINCT FROM NEW.status
          AND NEW.status NOT IN ('pending', 'confirming')
          AND (OLD.status IN ('pending', 'confirming') OR NEW.status IN ('confirmed', 'failed')))
    EXECUTE FUNCTION chainworker_spend_settle();

ALTER TABLE pending_transactions SET (fillfactor = 75);
