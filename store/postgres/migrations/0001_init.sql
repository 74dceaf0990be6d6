-- Accounts, channels, authenticators and their history, sessions, outbox.
CREATE TABLE accounts (
    id                TEXT PRIMARY KEY,
    username          TEXT NOT NULL UNIQUE,
    display_name      TEXT NOT NULL,
    kind              TEXT NOT NULL CHECK (kind IN ('human', 'service')),
    status            TEXT NOT NULL CHECK (status IN ('active', 'suspended', 'terminated')),
    employment        TEXT NOT NULL CHECK (employment IN ('employee', 'contractor', 'third_party')),
    contract_end      TIMESTAMPTZ,
    manager_id        TEXT NOT NULL DEFAULT '',
    sponsor_id        TEXT NOT NULL DEFAULT '',
    owners            JSONB NOT NULL DEFAULT '[]',
    group_names       JSONB NOT NULL DEFAULT '[]',
    roles             JSONB NOT NULL DEFAULT '[]',
    recovery_contacts JSONB NOT NULL DEFAULT '[]',
    ial               INTEGER NOT NULL CHECK (ial BETWEEN 1 AND 3),
    failed_signins    INTEGER NOT NULL DEFAULT 0,
    locked_at         TIMESTAMPTZ,
    created_at        TIMESTAMPTZ NOT NULL,
    updated_at        TIMESTAMPTZ NOT NULL,
    version           BIGINT NOT NULL DEFAULT 1
);

CREATE TABLE channels (
    id              TEXT PRIMARY KEY,
    account_id      TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    kind            TEXT NOT NULL CHECK (kind IN ('email', 'phone')),
    address         TEXT NOT NULL,
    verified_at     TIMESTAMPTZ,
    created_at      TIMESTAMPTZ NOT NULL,
    code_hash       BYTEA,
    code_expires_at TIMESTAMPTZ,
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
    secret        BYTEA,
    credential_id BYTEA UNIQUE,
    device_bound  BOOLEAN NOT NULL DEFAULT FALSE,
    last_step     BIGINT NOT NULL DEFAULT 0,
    created_at    TIMESTAMPTZ NOT NULL,
    last_used_at  TIMESTAMPTZ,
    revoked_at    TIMESTAMPTZ
);
CREATE INDEX authenticators_account ON authenticators (account_id);
-- At most one active password and one active recovery-code set per account.
CREATE UNIQUE INDEX authenticators_one_password ON authenticators (account_id, kind)
    WHERE status = 'active' AND kind IN ('password', 'recovery_codes');

CREATE TABLE authenticator_events (
    id               BIGSERIAL PRIMARY KEY,
    authenticator_id TEXT NOT NULL,
    account_id       TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    kind             TEXT NOT NULL,
    type             TEXT NOT NULL,
    at               TIMESTAMPTZ NOT NULL,
    ip               TEXT NOT NULL DEFAULT '',
    user_agent       TEXT NOT NULL DEFAULT ''
);
CREATE INDEX authenticator_events_account ON authenticator_events (account_id, id);

CREATE TABLE recovery_codes (
    authenticator_id TEXT NOT NULL REFERENCES authenticators (id) ON DELETE CASCADE,
    hash             BYTEA NOT NULL,
    used_at          TIMESTAMPTZ,
    PRIMARY KEY (authenticator_id, hash)
);

CREATE TABLE sessions (
    id              TEXT PRIMARY KEY,
    account_id      TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    token_hash      BYTEA NOT NULL UNIQUE,
    aal             INTEGER NOT NULL,
    methods         JSONB NOT NULL DEFAULT '[]',
    auth_time       TIMESTAMPTZ NOT NULL,
    reauth_at       TIMESTAMPTZ NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL,
    last_seen_at    TIMESTAMPTZ NOT NULL,
    expires_at      TIMESTAMPTZ NOT NULL,
    idle_timeout_ms BIGINT NOT NULL DEFAULT 0,
    ip              TEXT NOT NULL DEFAULT '',
    user_agent      TEXT NOT NULL DEFAULT '',
    revoked_at      TIMESTAMPTZ,
    restricted      BOOLEAN NOT NULL DEFAULT FALSE,
    ceremony        BYTEA
);
CREATE INDEX sessions_account ON sessions (account_id);
CREATE INDEX sessions_expires ON sessions (expires_at);

CREATE TABLE outbox (
    id         TEXT PRIMARY KEY,
    account_id TEXT NOT NULL DEFAULT '',
    to_address TEXT NOT NULL,
    subject    TEXT NOT NULL,
    body       TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX outbox_created ON outbox (created_at);
