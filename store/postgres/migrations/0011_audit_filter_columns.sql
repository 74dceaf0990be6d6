-- The audit log's filter columns become plain columns that the store
-- writes with each event, instead of columns PostgreSQL generates from
-- `data`. Each of the six expressions parsed the event's JSON again
-- (`data::jsonb`), on its insert and again on the sequencer's update of
-- `seq` (PostgreSQL 15 recomputes stored generated columns on every
-- update): about a twentieth of PostgreSQL's time in a recovery
-- (docs/benchmarks.md, change 40). The values come from the same encoding
-- that `data` holds (AuditEvent.MarshalCanonicalFilters), so they still
-- cannot disagree with it; the store's tests compare them with what the
-- expressions would give. DROP EXPRESSION keeps every stored value and
-- does not rewrite the table.
ALTER TABLE audit_events
    ALTER COLUMN event_id DROP EXPRESSION,
    ALTER COLUMN ev_time DROP EXPRESSION,
    ALTER COLUMN actor_id DROP EXPRESSION,
    ALTER COLUMN subject_id DROP EXPRESSION,
    ALTER COLUMN action DROP EXPRESSION,
    ALTER COLUMN request_id DROP EXPRESSION;
