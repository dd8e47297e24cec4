-- Long-running workers (`fanout work`).
--
-- fanout_workers: one row per worker process while it lives. It heartbeats every 15 seconds; a row
-- whose heartbeat is older than two minutes belongs to a worker that died and is deleted by the next
-- worker that starts or by `fanout workers`. `state` is running, paused or draining.
--
-- fanout_control: what operators ask of every worker on every host, kept here (not in a process or a
-- cache) so one command reaches them all: `restart` (a worker started before `requested_at` exits
-- after its round), `pause:email` and `pause:wallet` (present: claiming of that kind is paused).

CREATE TABLE IF NOT EXISTS fanout_workers (
  id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  name VARCHAR(191) NOT NULL,
  host VARCHAR(255) NOT NULL,
  pid INT UNSIGNED NOT NULL,
  version VARCHAR(64) NOT NULL,
  types VARCHAR(32) NOT NULL,
  state VARCHAR(16) NOT NULL DEFAULT 'running',
  company_id BIGINT UNSIGNED NULL,
  job_kind VARCHAR(10) NULL,
  job_id BIGINT UNSIGNED NULL,
  items_done BIGINT UNSIGNED NOT NULL DEFAULT 0,
  rss_bytes BIGINT UNSIGNED NULL,
  started_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  heartbeat_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  KEY fanout_workers_heartbeat (heartbeat_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE IF NOT EXISTS fanout_control (
  name VARCHAR(32) NOT NULL PRIMARY KEY,
  requested_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  requested_by VARCHAR(255) NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
