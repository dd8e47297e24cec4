-- What a lease's holder may have handed to the server, so that a tick taking over a dead holder's
-- lease flags in doubt only the items whose transfer may have started.
--   handed_through       items claimed by `owner` with an id up to this one may have been handed
--                        to the SMTP/HTTP server (moved ahead with the holder's outcome writes)
--   prev_owner,          the holder and its mark as they were when the lease was taken over
--   prev_handed_through  (its items above the mark were claimed but never handed over: they go
--                        back to pending, uncharged and not in doubt)

ALTER TABLE fanout_leases
  ADD COLUMN IF NOT EXISTS handed_through BIGINT UNSIGNED NOT NULL DEFAULT 0,
  ADD COLUMN IF NOT EXISTS prev_owner VARCHAR(64) NULL,
  ADD COLUMN IF NOT EXISTS prev_handed_through BIGINT UNSIGNED NOT NULL DEFAULT 0;

ALTER TABLE bulk_email_jobs ADD INDEX IF NOT EXISTS fanout_jobs_status_completed (status, completed_at);
ALTER TABLE bulk_wallet_api_jobs ADD INDEX IF NOT EXISTS fanout_jobs_status_completed (status, completed_at);
