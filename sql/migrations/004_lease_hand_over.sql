-- Write-ahead bookkeeping (the database tells the truth at every instant).
--   <jobs>.handed_through         items of the job with an id up to this one may have been handed to
--                                 the SMTP/HTTP server by the tick holding the company's lease (moved
--                                 ahead with its outcome writes): after a crash only those are in doubt,
--                                 the others were claimed but never sent and go back to pending
--   fanout_leases.prev_owner      a holder whose lease was taken over and whose items in flight were
--                                 not resolved yet (the taker may only have ended a cancelled job)
--   <wallet items>.unregistered_at  when APNs answered 410 for the item's device
-- The (status, completed_at) index serves finalising jobs ended outside Fanout.

ALTER TABLE fanout_leases ADD COLUMN IF NOT EXISTS prev_owner VARCHAR(64) NULL;

ALTER TABLE bulk_email_jobs
  ADD COLUMN IF NOT EXISTS handed_through BIGINT UNSIGNED NOT NULL DEFAULT 0,
  ADD INDEX IF NOT EXISTS fanout_jobs_status_completed (status, completed_at);

ALTER TABLE bulk_wallet_api_jobs
  ADD COLUMN IF NOT EXISTS handed_through BIGINT UNSIGNED NOT NULL DEFAULT 0,
  ADD INDEX IF NOT EXISTS fanout_jobs_status_completed (status, completed_at);

ALTER TABLE bulk_wallet_api_job_items ADD COLUMN IF NOT EXISTS unregistered_at TIMESTAMP NULL DEFAULT NULL;
