-- Request rates shared by every tick and worker on every host, per platform credential
-- (Google Wallet: WALLET_GOOGLE_RATE requests a second per service-account key, 20 by default).
--
-- fanout_rates: one row per credential (named without its secret). `next_at` (Unix seconds) is
-- when the next request may start; a process reserves a few requests at once by moving it on
-- (at most one second's worth may start at once: the burst), and a 429 from the platform moves
-- it past a pause for everybody.

CREATE TABLE IF NOT EXISTS fanout_rates (
  name VARCHAR(191) NOT NULL PRIMARY KEY,
  next_at DOUBLE NOT NULL DEFAULT 0
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
