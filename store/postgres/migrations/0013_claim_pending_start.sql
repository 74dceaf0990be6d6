-- A direct run's claim of its pending start (jobs/direct.go) goes with its
-- transaction's COMMIT, in the same round trip as the outcome's inserts,
-- instead of as the transaction's first statement (a round trip of its
-- own). Nothing can look at the DELETE's row count between it and the
-- COMMIT sent behind it, so the claim fails the transaction itself when
-- the start is no longer pending (the mover handed it to River, or
-- another run claimed it): SQLSTATE RC001, which the job queue reads as
-- "taken", and nothing of the run is committed.
CREATE FUNCTION claim_pending_start(start_id BIGINT) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM pending_starts WHERE row_id = start_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'pending start % is no longer pending', start_id USING ERRCODE = 'RC001';
    END IF;
END
$$;
