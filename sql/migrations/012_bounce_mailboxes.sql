-- Where `fanout bounces` got to in each bounce mailbox: a message is read once. A mailbox
-- whose UIDVALIDITY changed (recreated) is read again from its first message; reading a message
-- twice changes nothing more (its item is already bounced, its address already suppressed).

CREATE TABLE IF NOT EXISTS fanout_bounce_mailboxes (
  mailbox VARCHAR(255) NOT NULL PRIMARY KEY,
  uid_validity BIGINT UNSIGNED NOT NULL,
  last_uid BIGINT UNSIGNED NOT NULL DEFAULT 0,
  read_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
