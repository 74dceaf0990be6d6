-- The audit log's filter by action had no index: a list of one action,
-- newest first, walked the log by position until it had a page, which for
-- a rare action is the whole log (2 s at 1,000,000 events here, about 30 s
-- at 10,000,000; docs/benchmarks.md, change 61). Keyed by the action and
-- then the position, the index gives a page in order; each action's
-- entries grow at their end, so the sequencer adds each event to a page
-- it has just written. Building it reads the whole log once, and holds writes to the table
-- meanwhile.
CREATE INDEX audit_events_action ON audit_events (action, seq) WHERE seq IS NOT NULL;
