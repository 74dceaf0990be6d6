-- "Can't sign in?" requests accepted and not yet run (jobs/pending.go).
-- The server runs each in process right after its commit and deletes its
-- row in the transaction that records the outcome; a row still here at
-- due_ms (Unix milliseconds) becomes a River job. One small insert and
-- one delete by key instead of River's insert and delete of a job row.
CREATE TABLE pending_starts (
    row_id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    args   TEXT NOT NULL,
    due_ms BIGINT NOT NULL
);
