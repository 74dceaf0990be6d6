-- Notifications and webhook endpoints (docs/notifications.md).
--
-- A notification is written in the transaction of the change it reports,
-- with the job that delivers it. `body` is sealed by the service (mail
-- carries codes); `row_id` orders the list for administrators.
CREATE TABLE notifications (
    row_id     INTEGER PRIMARY KEY AUTOINCREMENT,
    id         TEXT NOT NULL UNIQUE,
    kind       TEXT NOT NULL CHECK (kind IN ('email', 'sms', 'webhook')),
    account_id TEXT NOT NULL DEFAULT '',
    to_address TEXT NOT NULL,
    subject    TEXT NOT NULL,
    body       BLOB NOT NULL,
    state      TEXT NOT NULL CHECK (state IN ('queued', 'sent', 'failed')),
    attempts   INTEGER NOT NULL DEFAULT 0,
    last_error TEXT NOT NULL DEFAULT '',
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    sent_at    TIMESTAMP
);
CREATE INDEX notifications_account ON notifications (account_id, row_id);
CREATE INDEX notifications_state ON notifications (state, row_id);
CREATE INDEX notifications_to ON notifications (to_address, row_id);

-- Standard Webhooks receivers. The secrets are sealed by the service;
-- previous_secret signs alongside the new one until previous_until.
CREATE TABLE webhook_endpoints (
    id              TEXT PRIMARY KEY,
    url             TEXT NOT NULL,
    events          TEXT NOT NULL DEFAULT '[]',
    secret          BLOB NOT NULL,
    previous_secret BLOB,
    previous_until  TIMESTAMP,
    source          TEXT NOT NULL CHECK (source IN ('config', 'api')),
    failures        INTEGER NOT NULL DEFAULT 0,
    disabled_at     TIMESTAMP,
    disabled_reason TEXT NOT NULL DEFAULT '',
    created_at      TIMESTAMP NOT NULL,
    updated_at      TIMESTAMP NOT NULL
);
