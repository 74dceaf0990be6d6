-- The outbox is where mail goes without an SMTP relay (the embedded
-- default): one account's mail, newest first, is how a person reads it,
-- and how `recourse bench` reads the codes it was sent. Without this index
-- each lookup filtered every message of its time window (on PostgreSQL
-- 0.6 ms, half a core of the database under recovery-code,
-- docs/benchmarks.md).
CREATE INDEX outbox_account ON outbox (account_id, created_at);
