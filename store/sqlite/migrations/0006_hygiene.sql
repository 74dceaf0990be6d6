-- Hygiene: the periodic sweep deletes recovery codes past their expiry, so
-- it reads challenges by expiry. (Tokens already have tokens_expires;
-- requests past their expiry are found through recovery_requests_state,
-- which only open requests are read from.)
CREATE INDEX challenges_expires ON challenges (expires_at);
