-- "Can't sign in?" requests accepted and not yet run (jobs/pending.go).
-- The server runs each in process right after its commit and deletes its
-- row in the transaction that records the outcome; a row still here at
-- due_ms (Unix milliseconds) becomes a River job. One small insert and
-- one delete by key instead of River's insert and delete of a job row.
-- AUTOINCREMENT: a row id is never used twice, so a run can never delete
-- another start's row.
CREATE TABLE pending_starts (
    row_id INTEGER PRIMARY KEY AUTOINCREMENT,
    args   TEXT NOT NULL,
    due_ms INTEGER NOT NULL
);
