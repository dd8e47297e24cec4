-- Throttle pauses of a sending account, shared by every process: how long the last pause was
-- (1 minute, doubling to 1 hour while throttles repeat, back to 1 minute after an hour without
-- one), when it began, and the server's words.

ALTER TABLE fanout_rates
  ADD COLUMN IF NOT EXISTS pause_seconds DOUBLE NOT NULL DEFAULT 0,
  ADD COLUMN IF NOT EXISTS paused_at DOUBLE NOT NULL DEFAULT 0,
  ADD COLUMN IF NOT EXISTS pause_reason VARCHAR(300) NULL;
