-- The tamper-evident audit log (docs/audit.md).
--
-- audit_events keeps each event's canonical encoding in `data`, byte for
-- byte: it is what the Merkle tree commits to. The columns that filters use
-- are generated from `data` by the database, so they cannot disagree with
-- it. `seq` is the position in the log, NULL until the sequencer assigns it;
-- `row_id` is the insertion order the sequencer follows. The unique index on
-- `seq` keeps the unsequenced rows (seq NULL) in row_id order, so the
-- sequencer needs no index of its own.
CREATE TABLE audit_events (
    row_id     INTEGER PRIMARY KEY,
    seq        INTEGER UNIQUE,
    data       TEXT NOT NULL,
    event_id   TEXT GENERATED ALWAYS AS (json_extract(data, '$.id')) VIRTUAL,
    ev_time    TEXT GENERATED ALWAYS AS (json_extract(data, '$.time')) VIRTUAL,
    actor_id   TEXT GENERATED ALWAYS AS (json_extract(data, '$.actor.account_id')) VIRTUAL,
    subject_id TEXT GENERATED ALWAYS AS (json_extract(data, '$.subject_id')) VIRTUAL,
    action     TEXT GENERATED ALWAYS AS (json_extract(data, '$.action')) VIRTUAL,
    request_id TEXT GENERATED ALWAYS AS (json_extract(data, '$.request_id')) VIRTUAL
);
-- The filters' indexes hold sequenced events only (the API lists no
-- others): a business transaction's insert touches the table, the id and
-- the position indexes, and the sequencer adds each event to the filters'
-- indexes in its batched round.
CREATE UNIQUE INDEX audit_events_event_id ON audit_events (event_id);
CREATE INDEX audit_events_time ON audit_events (ev_time) WHERE seq IS NOT NULL;
CREATE INDEX audit_events_subject ON audit_events (subject_id) WHERE seq IS NOT NULL;
CREATE INDEX audit_events_actor ON audit_events (actor_id) WHERE seq IS NOT NULL;
CREATE INDEX audit_events_request ON audit_events (request_id) WHERE seq IS NOT NULL;

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
