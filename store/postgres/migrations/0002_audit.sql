-- The tamper-evident audit log (docs/audit.md).
--
-- audit_events keeps each event's canonical encoding in `data`, byte for
-- byte (TEXT, not JSONB, which would not keep the bytes): it is what the
-- Merkle tree commits to. The columns that filters use are generated from
-- `data` by the database, so they cannot disagree with it. `seq` is the
-- position in the log, NULL until the sequencer assigns it; `row_id` is the
-- insertion order the sequencer follows.
CREATE TABLE audit_events (
    row_id     BIGSERIAL PRIMARY KEY,
    seq        BIGINT UNIQUE,
    data       TEXT NOT NULL,
    event_id   TEXT GENERATED ALWAYS AS ((data::jsonb) ->> 'id') STORED,
    ev_time    TEXT GENERATED ALWAYS AS ((data::jsonb) ->> 'time') STORED,
    actor_id   TEXT GENERATED ALWAYS AS ((data::jsonb) -> 'actor' ->> 'account_id') STORED,
    subject_id TEXT GENERATED ALWAYS AS ((data::jsonb) ->> 'subject_id') STORED,
    action     TEXT GENERATED ALWAYS AS ((data::jsonb) ->> 'action') STORED,
    request_id TEXT GENERATED ALWAYS AS ((data::jsonb) ->> 'request_id') STORED
);
-- The filters' indexes hold sequenced events only (the API lists no
-- others): a business transaction's insert touches the table, the id and
-- the position indexes, and the sequencer adds each event to the filters'
-- indexes in its batched round.
CREATE UNIQUE INDEX audit_events_event_id ON audit_events (event_id);
CREATE INDEX audit_events_unsequenced ON audit_events (row_id) WHERE seq IS NULL;
CREATE INDEX audit_events_time ON audit_events (ev_time) WHERE seq IS NOT NULL;
CREATE INDEX audit_events_subject ON audit_events (subject_id) WHERE seq IS NOT NULL;
CREATE INDEX audit_events_actor ON audit_events (actor_id) WHERE seq IS NOT NULL;
CREATE INDEX audit_events_request ON audit_events (request_id) WHERE seq IS NOT NULL;

-- The stored hashes of the Merkle tree, indexed as golang.org/x/mod/sumdb/tlog
-- numbers them (tlog.StoredHashIndex).
CREATE TABLE audit_hashes (
    idx  BIGINT PRIMARY KEY,
    hash BYTEA NOT NULL
);

-- Signed checkpoints: a C2SP signed note over "origin\nsize\nbase64(root)\n".
CREATE TABLE audit_checkpoints (
    size       BIGINT PRIMARY KEY,
    root       BYTEA NOT NULL,
    note       TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);
