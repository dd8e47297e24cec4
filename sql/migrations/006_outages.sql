-- What holds jobs up, for the people looking at them.
--
-- fanout_outages: one row per kind, written by a tick or worker that could not use its delivery
-- server (SMTP or HTTP): the reason (host, port and the error; never a credential), when this
-- outage began (`since`, kept while ticks keep meeting it) and when it was last met. A job whose
-- last progress is older than `last_seen` is shown as waiting for that server (`fanout jobs`).

CREATE TABLE IF NOT EXISTS fanout_outages (
  kind VARCHAR(10) NOT NULL PRIMARY KEY,
  reason VARCHAR(1000) NOT NULL,
  since TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  last_seen TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
