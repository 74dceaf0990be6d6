-- The index of audit events by actor holds only the events whose actor is
-- not their subject: an administrator's, a help-desk agent's, an
-- approver's, a client's. Most events are people acting on their own
-- account, and those the index of subjects finds already. The sequencer
-- adds every event it signs to the filters' indexes; the actors' index,
-- keyed by account like the subjects', put each event on a second random
-- page of an index as large as the log (docs/benchmarks.md, change 58).
-- The store's filters by actor and by account read both indexes
-- (ListAuditEvents). Rebuilding the index reads the whole log once, and
-- holds writes to the table meanwhile.
DROP INDEX audit_events_actor;
CREATE INDEX audit_events_actor ON audit_events (actor_id)
    WHERE seq IS NOT NULL AND actor_id IS DISTINCT FROM subject_id;
