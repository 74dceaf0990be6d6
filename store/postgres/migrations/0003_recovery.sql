-- The recovery workflow: requests, evidence, votes, challenges, tokens.
ALTER TABLE accounts ADD COLUMN recovery_failures INTEGER NOT NULL DEFAULT 0;
ALTER TABLE accounts ADD COLUMN frozen_at TIMESTAMPTZ;

CREATE TABLE recovery_requests (
    id                 TEXT PRIMARY KEY,
    account_id         TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    action             TEXT NOT NULL,
    tier               TEXT NOT NULL,
    state              TEXT NOT NULL CHECK (state IN ('collecting', 'awaiting_approval', 'cooling_off', 'ready', 'completed', 'cancelled', 'denied', 'expired')),
    lost               TEXT NOT NULL DEFAULT '',
    initiator          TEXT NOT NULL,
    initiator_id       TEXT NOT NULL DEFAULT '',
    reason             TEXT NOT NULL DEFAULT '',
    change_json        JSONB NOT NULL DEFAULT '{}',
    change_digest      TEXT NOT NULL,
    policy_digest      TEXT NOT NULL,
    rule               TEXT NOT NULL,
    requirement        BYTEA NOT NULL,
    requirement_digest TEXT NOT NULL,
    browser_hash       BYTEA,
    ceremony           BYTEA,
    cooling_until      TIMESTAMPTZ,
    expires_at         TIMESTAMPTZ NOT NULL,
    outcome            TEXT NOT NULL DEFAULT '',
    ip                 TEXT NOT NULL DEFAULT '',
    user_agent         TEXT NOT NULL DEFAULT '',
    created_at         TIMESTAMPTZ NOT NULL,
    updated_at         TIMESTAMPTZ NOT NULL,
    completed_at       TIMESTAMPTZ,
    version            BIGINT NOT NULL DEFAULT 1
);
CREATE INDEX recovery_requests_account ON recovery_requests (account_id, created_at);
CREATE INDEX recovery_requests_state ON recovery_requests (state, created_at);

CREATE TABLE recovery_evidence (
    id         BIGSERIAL PRIMARY KEY,
    request_id TEXT NOT NULL REFERENCES recovery_requests (id) ON DELETE CASCADE,
    kind       TEXT NOT NULL,
    detail     BYTEA NOT NULL,
    actor_id   TEXT NOT NULL DEFAULT '',
    created_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX recovery_evidence_request ON recovery_evidence (request_id, id);

CREATE TABLE recovery_votes (
    request_id    TEXT NOT NULL REFERENCES recovery_requests (id) ON DELETE CASCADE,
    approver_id   TEXT NOT NULL,
    change_digest TEXT NOT NULL,
    vote          TEXT NOT NULL CHECK (vote IN ('approve', 'deny')),
    roles         JSONB NOT NULL DEFAULT '[]',
    comment       TEXT NOT NULL DEFAULT '',
    created_at    TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (request_id, approver_id, change_digest)
);

CREATE TABLE challenges (
    id         TEXT PRIMARY KEY,
    request_id TEXT NOT NULL REFERENCES recovery_requests (id) ON DELETE CASCADE,
    channel_id TEXT NOT NULL,
    kind       TEXT NOT NULL CHECK (kind IN ('email', 'sms')),
    code_hash  BYTEA NOT NULL,
    attempts   INTEGER NOT NULL DEFAULT 0,
    expires_at TIMESTAMPTZ NOT NULL,
    used_at    TIMESTAMPTZ,
    created_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX challenges_request ON challenges (request_id);

CREATE TABLE tokens (
    hash         BYTEA PRIMARY KEY,
    id           TEXT NOT NULL UNIQUE,
    purpose      TEXT NOT NULL,
    request_id   TEXT NOT NULL DEFAULT '',
    account_id   TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    browser_hash BYTEA,
    expires_at   TIMESTAMPTZ NOT NULL,
    used_at      TIMESTAMPTZ,
    revoked_at   TIMESTAMPTZ,
    created_at   TIMESTAMPTZ NOT NULL
);
CREATE INDEX tokens_account ON tokens (account_id);
CREATE INDEX tokens_expires ON tokens (expires_at);
