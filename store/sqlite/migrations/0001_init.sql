-- Accounts, channels, authenticators and their history, sessions, outbox.
CREATE TABLE accounts (
    id                TEXT PRIMARY KEY,
    username          TEXT NOT NULL UNIQUE,
    display_name      TEXT NOT NULL,
    kind              TEXT NOT NULL CHECK (kind IN ('human', 'service')),
    status            TEXT NOT NULL CHECK (status IN ('active', 'suspended', 'terminated')),
    employment        TEXT NOT NULL CHECK (employment IN ('employee', 'contractor', 'third_party')),
    contract_end      TIMESTAMP,
    manager_id        TEXT NOT NULL DEFAULT '',
    sponsor_id        TEXT NOT NULL DEFAULT '',
    owners            TEXT NOT NULL DEFAULT '[]',
    group_names       TEXT NOT NULL DEFAULT '[]',
    roles             TEXT NOT NULL DEFAULT '[]',
    recovery_contacts TEXT NOT NULL DEFAULT '[]',
    ial               INTEGER NOT NULL CHECK (ial BETWEEN 1 AND 3),
    failed_signins    INTEGER NOT NULL DEFAULT 0,
    locked_at         TIMESTAMP,
    created_at        TIMESTAMP NOT NULL,
    updated_at        TIMESTAMP NOT NULL,
    version           INTEGER NOT NULL DEFAULT 1
);

CREATE TABLE channels (
    id              TEXT PRIMARY KEY,
    account_id      TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    kind            TEXT NOT NULL CHECK (kind IN ('email', 'phone')),
    address         TEXT NOT NULL,
    verified_at     TIMESTAMP,
    created_at      TIMESTAMP NOT NULL,
    code_hash       BLOB,
    code_expires_at TIMESTAMP,
    code_attempts   INTEGER NOT NULL DEFAULT 0,
    UNIQUE (account_id, kind, address)
);
CREATE INDEX channels_address ON channels (kind, address);

CREATE TABLE authenticators (
    id            TEXT PRIMARY KEY,
    account_id    TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    kind          TEXT NOT NULL CHECK (kind IN ('password', 'totp', 'webauthn', 'recovery_codes')),
    status        TEXT NOT NULL CHECK (status IN ('pending', 'active', 'replaced', 'revoked')),
    name          TEXT NOT NULL DEFAULT '',
    secret        BLOB,
    credential_id BLOB UNIQUE,
    device_bound  INTEGER NOT NULL DEFAULT 0,
    last_step     INTEGER NOT NULL DEFAULT 0,
    created_at    TIMESTAMP NOT NULL,
    last_used_at  TIMESTAMP,
    revoked_at    TIMESTAMP
);
CREATE INDEX authenticators_account ON authenticators (account_id);
-- At most one active password and one active recovery-code set per account.
CREATE UNIQUE INDEX authenticators_one_password ON authenticators (account_id, kind)
    WHERE status = 'active' AND kind IN ('password', 'recovery_codes');

CREATE TABLE authenticator_events (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    authenticator_id TEXT NOT NULL,
    account_id       TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    kind             TEXT NOT NULL,
    type             TEXT NOT NULL,
    at               TIMESTAMP NOT NULL,
    ip               TEXT NOT NULL DEFAULT '',
    user_agent       TEXT NOT NULL DEFAULT ''
);
CREATE INDEX authenticator_events_account ON authenticator_events (account_id, id);

CREATE TABLE recovery_codes (
    authenticator_id TEXT NOT NULL REFERENCES authenticators (id) ON DELETE CASCADE,
    hash             BLOB NOT NULL,
    used_at          TIMESTAMP,
    PRIMARY KEY (authenticator_id, hash)
);

CREATE TABLE sessions (
    id              TEXT PRIMARY KEY,
    account_id      TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    token_hash      BLOB NOT NULL UNIQUE,
    aal             INTEGER NOT NULL,
    methods         TEXT NOT NULL DEFAULT '[]',
    auth_time       TIMESTAMP NOT NULL,
    reauth_at       TIMESTAMP NOT NULL,
    created_at      TIMESTAMP NOT NULL,
    last_seen_at    TIMESTAMP NOT NULL,
    expires_at      TIMESTAMP NOT NULL,
    idle_timeout_ms INTEGER NOT NULL DEFAULT 0,
    ip              TEXT NOT NULL DEFAULT '',
    user_agent      TEXT NOT NULL DEFAULT '',
    revoked_at      TIMESTAMP,
    restricted      INTEGER NOT NULL DEFAULT 0,
    ceremony        BLOB
);
CREATE INDEX sessions_account ON sessions (account_id);
CREATE INDEX sessions_expires ON sessions (expires_at);

CREATE TABLE outbox (
    id         TEXT PRIMARY KEY,
    account_id TEXT NOT NULL DEFAULT '',
    to_address TEXT NOT NULL,
    subject    TEXT NOT NULL,
    body       TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX outbox_created ON outbox (created_at);
