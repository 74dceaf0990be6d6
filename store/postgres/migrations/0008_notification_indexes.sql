-- The notifications' three secondary indexes served no query of the
-- service: a delivery reads its notification by id, and listing is by
-- row_id. Each cost every message three more index insertions, two of them
-- at random places (by account and by address), inside the transaction of
-- the change it reports (docs/benchmarks.md). A listing that filters by
-- account, address or state scans from the newest; an index for it comes
-- with the page or API that needs it.
DROP INDEX IF EXISTS notifications_account;
DROP INDEX IF EXISTS notifications_state;
DROP INDEX IF EXISTS notifications_to;
