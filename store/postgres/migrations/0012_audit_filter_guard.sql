-- Since 0011 the store writes the audit log's filter columns itself. Two
-- ways they could still come to disagree with `data` are closed here:
--
-- * an insert that leaves them out — a replica still running a binary
--   from before 0011 during a rolling upgrade writes `data` only — gets
--   them from `data`, as the generated columns did (the trigger fires only
--   for such a row: `event_id` is never NULL otherwise);
-- * an update that changes them is refused: an event is never edited, and
--   hiding one from the filtered lists by rewriting its subject would not
--   break `recourse audit verify`, which checks `data`. (The sequencer's
--   update sets `seq` only.)
--
-- Anyone who can alter the table can drop these triggers, as they could
-- have dropped the generated columns' expressions; the log's integrity
-- rests on `data`, the tree and the signed checkpoints (docs/audit.md).
CREATE FUNCTION audit_events_filters() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    d jsonb;
BEGIN
    IF TG_OP = 'UPDATE' THEN
        RAISE EXCEPTION 'audit event %: its filter columns cannot change', OLD.row_id
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    d := NEW.data::jsonb;
    NEW.event_id   := d ->> 'id';
    NEW.ev_time    := d ->> 'time';
    NEW.actor_id   := d -> 'actor' ->> 'account_id';
    NEW.subject_id := d ->> 'subject_id';
    NEW.action     := d ->> 'action';
    NEW.request_id := d ->> 'request_id';
    RETURN NEW;
END
$$;

CREATE TRIGGER audit_events_fill_filters BEFORE INSERT ON audit_events
    FOR EACH ROW WHEN (NEW.event_id IS NULL) EXECUTE FUNCTION audit_events_filters();

CREATE TRIGGER audit_events_keep_filters BEFORE UPDATE ON audit_events
    FOR EACH ROW WHEN (NEW.event_id IS DISTINCT FROM OLD.event_id
        OR NEW.ev_time IS DISTINCT FROM OLD.ev_time
        OR NEW.actor_id IS DISTINCT FROM OLD.actor_id
        OR NEW.subject_id IS DISTINCT FROM OLD.subject_id
        OR NEW.action IS DISTINCT FROM OLD.action
        OR NEW.request_id IS DISTINCT FROM OLD.request_id)
    EXECUTE FUNCTION audit_events_filters();
