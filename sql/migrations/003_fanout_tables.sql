-- Fanout's own bookkeeping.
--
-- fanout_leases: the overlap lock, one row per (kind, company). A tick owns it while `owner` is its
-- token and `heartbeat_at` is recent by the database's clock; a row whose heartbeat is older than
-- --stuck-after may be taken over. `served_at` rotates companies fairly between ticks. Rows stay
-- when released (owner NULL), so taking a lease is one UPDATE or one INSERT.
--
-- fanout_ticks: one row per tick, so inactivity expiry can tell "the job made no progress" from
-- "Fanout was not running".

CREATE TABLE IF NOT EXISTS fanout_leases (
  kind VARCHAR(10) NOT NULL,
  company_id BIGINT UNSIGNED NOT NULL,
  owner VARCHAR(64) NULL,
  job_id BIGINT UNSIGNED NULL,
  acquired_at TIMESTAMP(6) NULL DEFAULT NULL,
  heartbeat_at TIMESTAMP(6) NULL DEFAULT NULL,
  served_at TIMESTAMP(6) NULL DEFAULT NULL,
  PRIMARY KEY (kind, company_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE IF NOT EXISTS fanout_ticks (
  id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  kind VARCHAR(10) NOT NULL,
  owner VARCHAR(64) NOT NULL,
  host VARCHAR(255) NOT NULL,
  pid INT UNSIGNED NOT NULL,
  started_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  heartbeat_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  finished_at TIMESTAMP(6) NULL DEFAULT NULL,
  jobs_advanced INT UNSIGNED NOT NULL DEFAULT 0,
  items_delivered INT UNSIGNED NOT NULL DEFAULT 0,
  items_failed INT UNSIGNED NOT NULL DEFAULT 0,
  items_retrying INT UNSIGNED NOT NULL DEFAULT 0,
  exit_code SMALLINT NULL,
  KEY fanout_ticks_kind_started (kind, started_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
