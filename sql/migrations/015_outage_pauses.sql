-- fanout_outages.paused: 1 when what holds the kind's jobs up is a pause the server asked for (a
-- throttle reply, a reached hourly or daily limit) rather than a server that cannot be used: the
-- jobs list shows a pause however recent the job's last progress, and in the pause's own words.

ALTER TABLE fanout_outages ADD COLUMN IF NOT EXISTS paused TINYINT(1) NOT NULL DEFAULT 0;
