-- Access tokens Fanout minted for a platform credential (Google Wallet: an OAuth 2 token from a
-- service-account key), reused by every tick and worker on every host until 5 minutes before
-- `expires_at` (Unix seconds): cron starts a new process every minute, so memory is not enough.
--
-- fanout_access_tokens: one row per credential, named without its secret ("google:" + the key
-- file's client_email + ":" + private_key_id). The token is a secret: this table is the only
-- place Fanout keeps it; it is never logged, reported or shown.

CREATE TABLE IF NOT EXISTS fanout_access_tokens (
  credential VARCHAR(191) NOT NULL PRIMARY KEY,
  access_token TEXT NOT NULL,
  expires_at DOUBLE NOT NULL,
  updated_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
