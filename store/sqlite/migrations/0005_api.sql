-- The JSON API: API keys and the responses of idempotent writes.
--
-- api_keys keeps only the HMAC of each secret (hash) and a short hint for
-- people; a key works while revoked_at is NULL and expires_at is ahead.
-- Rotation links the two keys both ways and cuts the old key's expiry to
-- the overlap window.
CREATE TABLE api_keys (
    id           TEXT PRIMARY KEY,
    name         TEXT NOT NULL,
    owner_id     TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    scopes       TEXT NOT NULL DEFAULT '[]',
    hash         BLOB NOT NULL UNIQUE,
    hint         TEXT NOT NULL,
    created_by   TEXT NOT NULL,
    created_at   TIMESTAMP NOT NULL,
    expires_at   TIMESTAMP NOT NULL,
    last_used_at TIMESTAMP,
    last_used_ip TEXT NOT NULL DEFAULT '',
    revoked_at   TIMESTAMP,
    rotated_from TEXT NOT NULL DEFAULT '',
    replaced_by  TEXT NOT NULL DEFAULT '',
    version      INTEGER NOT NULL DEFAULT 1
);
CREATE INDEX api_keys_owner ON api_keys (owner_id, id);

-- One row per (caller, Idempotency-Key): the request's hash and, once it
-- finished, its response (status 0 while it runs; body sealed).
CREATE TABLE api_idempotency (
    caller       TEXT NOT NULL,
    idem_key     TEXT NOT NULL,
    request_hash BLOB NOT NULL,
    status       INTEGER NOT NULL DEFAULT 0,
    body         BLOB,
    created_at   TIMESTAMP NOT NULL,
    PRIMARY KEY (caller, idem_key)
);
CREATE INDEX api_idempotency_created ON api_idempotency (created_at);
