-- Cancel a job from SQL (what `fanout cancel email 42 --reason '…'` does, minus its checks).
-- Updating the parent alone is enough: a running tick sees it within half a second, stops
-- sending, and ends every unfinished item `cancelled` with this reason; so does the next tick
-- when none is running.
UPDATE bulk_email_jobs
   SET status = 'cancelled', reason = 'Wrong recipient list', updated_at = NOW()
 WHERE id = 42 AND status IN ('pending', 'processing');

-- The same for a wallet job:
-- UPDATE bulk_wallet_api_jobs SET status = 'cancelled', reason = '…' WHERE id = 42;
