-- fanout_suppressions.changed_at: when a row was added or last changed (by Fanout, or by a host
-- application writing the table). A sending tick's writes ask whether any suppression of the
-- company changed since its items were claimed (through this index), so an unsubscribe that
-- arrives mid-batch holds back the messages not handed to the server yet.

ALTER TABLE fanout_suppressions
  ADD COLUMN IF NOT EXISTS changed_at TIMESTAMP(6) NOT NULL
    DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6),
  ADD INDEX IF NOT EXISTS fanout_suppressions_changed (company_id, changed_at);
