-- Messages sent per SMTP account and minute, all processes together, for the hourly and daily
-- limits (MAIL_RATE_PER_HOUR, MAIL_RATE_PER_DAY: rolling 60 minutes and 24 hours). A process
-- takes a few sends at a time under the account's fanout_rates row lock, so overlapping ticks
-- never pass a limit together. Rows older than a day are deleted as new minutes are written.

CREATE TABLE IF NOT EXISTS fanout_send_counts (
  name VARCHAR(191) NOT NULL,
  minute BIGINT UNSIGNED NOT NULL,
  sent INT UNSIGNED NOT NULL DEFAULT 0,
  PRIMARY KEY (name, minute)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
