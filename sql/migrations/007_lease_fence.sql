-- Fencing that holds across Galera nodes.
--   fanout_leases.fence   counts the holder's fenced writes. The statements by which a holder
--                         advances a job (starting it, claiming items, writing progress) update
--                         the lease row in the same statement, so a holder on one node and a
--                         taker on another write the same row and Galera's certification lets
--                         only one of them commit (a read of the row would not conflict).

ALTER TABLE fanout_leases ADD COLUMN IF NOT EXISTS fence BIGINT UNSIGNED NOT NULL DEFAULT 0;
