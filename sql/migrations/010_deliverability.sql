-- Mail that arrives: marketing or transactional jobs, per-company suppressions, and an id of
-- this installation for Message-IDs.
--
-- bulk_email_jobs.mail_type: 'marketing' (the default for bulk: carries List-Unsubscribe and
-- is held back for unsubscribed or complaining recipients) or 'transactional'.
--
-- fanout_suppressions: addresses a company must not mail, in lower case. reason: unsubscribe
-- and complaint hold back marketing mail; hard_bounce and manual hold back every mail. source:
-- where it came from ('one-click', 'bounce uid 12', 'import list.csv', 'cli'). expires_at NULL:
-- for good.
--
-- fanout_installation: one random id made by the first `fanout migrate`, carried in every
-- Message-ID, so two databases (two installations) never make the same one.

ALTER TABLE bulk_email_jobs ADD COLUMN IF NOT EXISTS mail_type VARCHAR(20) NOT NULL DEFAULT 'marketing';

CREATE TABLE IF NOT EXISTS fanout_suppressions (
  company_id BIGINT UNSIGNED NOT NULL,
  email VARCHAR(320) NOT NULL,
  reason VARCHAR(20) NOT NULL,
  source VARCHAR(255) NULL,
  created_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  expires_at TIMESTAMP(6) NULL DEFAULT NULL,
  PRIMARY KEY (company_id, email)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS fanout_installation (
  id CHAR(16) NOT NULL PRIMARY KEY,
  created_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)
) ENGINE=InnoDB DEFAULT CHARSET=ascii;

INSERT INTO fanout_installation (id)
  SELECT LOWER(HEX(RANDOM_BYTES(8))) FROM DUAL WHERE NOT EXISTS (SELECT 1 FROM fanout_installation);
