-- The tamper-evident audit log (docs/audit.md).
--
-- audit_events keeps each event's canonical encoding in `data`, byte for
-- byte: it is what the Merkle tree commits to. The columns that filters use
-- are generated from `data` by the database, so they cannot disagree with
-- it. `seq` is the position in the log, NULL until the sequencer assigns it;
-- `row_id` is the insertion order the sequencer follows.
CREATE TABLE audit_events (
    row_id     INTEGER PRIMARY KEY AUTOINCREMENT,
    seq        INTEGER UNIQUE,
    data       TEXT NOT NULL,
    event_id   TEXT GENERATED ALWAYS AS (json_extract(data, '$.id')) VIRTUAL,
    ev_time    TEXT GENERATED ALWAYS AS (json_extract(data, '$.time')) VIRTUAL,
    actor_id   TEXT GENERATED ALWAYS AS (json_extract(data, '$.actor.account_id')) VIRTUAL,
    subject_id TEXT GENERATED ALWAYS AS (json_extract(data, '$.subject_id')) VIRTUAL,
    action     TEXT GENERATED ALWAYS AS (json_extract(data, '$.action')) VIRTUAL,
    request_id TEXT GENERATED ALWAYS AS (json_extract(data, '$.request_id')) VIRTUAL
);
CREATE UNIQUE INDEX audit_events_event_id ON audit_events (event_id);
CREATE INDEX audit_events_unsequenced ON audit_events (row_id) WHERE seq IS NULL;
CREATE INDEX audit_events_time ON audit_events (ev_time);
CREATE INDEX audit_events_subject ON audit_events (subject_id);
CREATE INDEX audit_events_actor ON audit_events (actor_id);
CREATE INDEX audit_events_request ON audit_events (request_id);

-- The stored hashes of the Merkle tree, indexed as golang.org/x/mod/sumdb/tlog
-- numbers them (tlog.StoredHashIndex).
CREATE TABLE audit_hashes (
    idx  INTEGER PRIMARY KEY,
    hash BLOB NOT NULL
);

-- Signed checkpoints: a C2SP signed note over "origin\nsize\nbase64(root)\n".
CREATE TABLE audit_checkpoints (
    size       INTEGER PRIMARY KEY,
    root       BLOB NOT NULL,
    note       TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL
);
