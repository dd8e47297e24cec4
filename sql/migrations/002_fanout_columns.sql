-- What Fanout needs beside the contract's columns. Every clause is IF NOT EXISTS, so this adds
-- only what a host application's own tables lack, and never drops or rewrites a row.
--   next_attempt_at  when a transiently failed item may be tried again (NULL: now)
--   claimed_by       the tick (lease owner token) that has the item in flight
--   claimed_at       when it was marked in flight
--   in_doubt         1 when the item was in flight in a tick that died: it may have been delivered
--   response_code    the SMTP reply code of the last attempt (wallet items use http_status)
-- The (job, status, id) index makes a claim cost the same on a job of any size.

ALTER TABLE bulk_email_jobs
  ADD COLUMN IF NOT EXISTS reason TEXT NULL,
  ADD COLUMN IF NOT EXISTS total_items INT UNSIGNED NOT NULL DEFAULT 0,
  ADD COLUMN IF NOT EXISTS processed_items INT UNSIGNED NOT NULL DEFAULT 0,
  ADD COLUMN IF NOT EXISTS failed_items INT UNSIGNED NOT NULL DEFAULT 0,
  ADD COLUMN IF NOT EXISTS last_processed_at TIMESTAMP NULL DEFAULT NULL,
  ADD COLUMN IF NOT EXISTS started_at TIMESTAMP NULL DEFAULT NULL,
  ADD COLUMN IF NOT EXISTS completed_at TIMESTAMP NULL DEFAULT NULL,
  ADD COLUMN IF NOT EXISTS created_at TIMESTAMP NULL DEFAULT NULL,
  ADD COLUMN IF NOT EXISTS updated_at TIMESTAMP NULL DEFAULT NULL,
  ADD INDEX IF NOT EXISTS fanout_jobs_status_company (status, company_id, id);

ALTER TABLE bulk_email_job_items
  ADD COLUMN IF NOT EXISTS name VARCHAR(255) NULL,
  ADD COLUMN IF NOT EXISTS data JSON NULL,
  ADD COLUMN IF NOT EXISTS reason TEXT NULL,
  ADD COLUMN IF NOT EXISTS attempts INT UNSIGNED NOT NULL DEFAULT 0,
  ADD COLUMN IF NOT EXISTS processed_at TIMESTAMP NULL DEFAULT NULL,
  ADD COLUMN IF NOT EXISTS created_at TIMESTAMP NULL DEFAULT NULL,
  ADD COLUMN IF NOT EXISTS updated_at TIMESTAMP NULL DEFAULT NULL,
  ADD COLUMN IF NOT EXISTS next_attempt_at TIMESTAMP(6) NULL DEFAULT NULL,
  ADD COLUMN IF NOT EXISTS claimed_by VARCHAR(64) NULL,
  ADD COLUMN IF NOT EXISTS claimed_at TIMESTAMP(6) NULL DEFAULT NULL,
  ADD COLUMN IF NOT EXISTS in_doubt TINYINT(1) NOT NULL DEFAULT 0,
  ADD COLUMN IF NOT EXISTS response_code SMALLINT NULL,
  ADD INDEX IF NOT EXISTS bulk_email_job_items_job_status_id (bulk_email_job_id, status, id);

ALTER TABLE bulk_wallet_api_jobs
  ADD COLUMN IF NOT EXISTS reason TEXT NULL,
  ADD COLUMN IF NOT EXISTS total_items INT UNSIGNED NOT NULL DEFAULT 0,
  ADD COLUMN IF NOT EXISTS processed_items INT UNSIGNED NOT NULL DEFAULT 0,
  ADD COLUMN IF NOT EXISTS failed_items INT UNSIGNED NOT NULL DEFAULT 0,
  ADD COLUMN IF NOT EXISTS last_processed_at TIMESTAMP NULL DEFAULT NULL,
  ADD COLUMN IF NOT EXISTS started_at TIMESTAMP NULL DEFAULT NULL,
  ADD COLUMN IF NOT EXISTS completed_at TIMESTAMP NULL DEFAULT NULL,
  ADD COLUMN IF NOT EXISTS created_at TIMESTAMP NULL DEFAULT NULL,
  ADD COLUMN IF NOT EXISTS updated_at TIMESTAMP NULL DEFAULT NULL,
  ADD INDEX IF NOT EXISTS fanout_jobs_status_company (status, company_id, id);

ALTER TABLE bulk_wallet_api_job_items
  ADD COLUMN IF NOT EXISTS card_id BIGINT UNSIGNED NULL,
  ADD COLUMN IF NOT EXISTS platform VARCHAR(20) NULL,
  ADD COLUMN IF NOT EXISTS data JSON NULL,
  ADD COLUMN IF NOT EXISTS reason TEXT NULL,
  ADD COLUMN IF NOT EXISTS attempts INT UNSIGNED NOT NULL DEFAULT 0,
  ADD COLUMN IF NOT EXISTS http_status SMALLINT NULL,
  ADD COLUMN IF NOT EXISTS processed_at TIMESTAMP NULL DEFAULT NULL,
  ADD COLUMN IF NOT EXISTS created_at TIMESTAMP NULL DEFAULT NULL,
  ADD COLUMN IF NOT EXISTS updated_at TIMESTAMP NULL DEFAULT NULL,
  ADD COLUMN IF NOT EXISTS next_attempt_at TIMESTAMP(6) NULL DEFAULT NULL,
  ADD COLUMN IF NOT EXISTS claimed_by VARCHAR(64) NULL,
  ADD COLUMN IF NOT EXISTS claimed_at TIMESTAMP(6) NULL DEFAULT NULL,
  ADD COLUMN IF NOT EXISTS in_doubt TINYINT(1) NOT NULL DEFAULT 0,
  ADD INDEX IF NOT EXISTS bulk_wallet_api_job_items_job_status_id (bulk_wallet_api_job_id, status, id);
