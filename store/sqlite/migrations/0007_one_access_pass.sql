-- One active temporary access pass per account, enforced by the database:
-- two passes issued at the same moment (two tabs, or a pass and a recovery
-- completing) could otherwise both be left active, since each transaction
-- revokes the passes it sees before adding its own. Passes made active
-- twice before this migration keep only the newest.
UPDATE tokens SET revoked_at = created_at
 WHERE purpose = 'access_pass' AND used_at IS NULL AND revoked_at IS NULL
   AND EXISTS (SELECT 1 FROM tokens n
                WHERE n.account_id = tokens.account_id AND n.purpose = 'access_pass'
                  AND n.used_at IS NULL AND n.revoked_at IS NULL
                  AND (n.created_at > tokens.created_at OR (n.created_at = tokens.created_at AND n.id > tokens.id)));
CREATE UNIQUE INDEX tokens_one_access_pass ON tokens (account_id)
 WHERE purpose = 'access_pass' AND used_at IS NULL AND revoked_at IS NULL;
