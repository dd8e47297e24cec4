import FanoutCore

/// The statements of the tick, for one kind of job. Table and column names come from
/// `JobTables`; every value is a bound parameter.
struct JobSQL: KindStatements {
    let kind: JobKind
    private var codeColumn: String { tables.codeColumn }

    /// Lease ownership, as a condition every fenced write carries: kind, company, owner. On one
    /// server the read locks the lease row until the write commits; Galera certifies written rows
    /// only, so the statements by which a holder advances a job write the row instead
    /// (`fencedBy`).
    private let fence = "EXISTS (SELECT 1 FROM fanout_leases WHERE kind = ? AND company_id = ? AND owner = ?)"
    /// The head of a fenced write that also writes the lease row (its `fence` counter, and its
    /// heartbeat: the holder lives), so two holders on two Galera nodes conflict at certification
    /// and only one commits. Parameters: kind, company, owner, then the statement's own. Only for
    /// statements whose assignments do not read each other: a multi-table UPDATE does not promise
    /// their order.
    private func fencedBy(_ table: String) -> String {
        """
        UPDATE fanout_leases fl JOIN \(table) ON fl.kind = ? AND fl.company_id = ? AND fl.owner = ?
        SET fl.fence = fl.fence + 1, fl.heartbeat_at = NOW(6),
        """
    }

    /// Each company's oldest runnable job (least recently served company first), and jobs
    /// cancelled or failed outside Fanout whose items still need ending (first of all).
    var companiesWithWork: String {
        """
        SELECT 0 AS finalise, j.id, j.company_id, j.template, j.status, j.reason, \(mailType) AS mail_type,
               j.total_items = 0 AS total_unknown,
               \(JobTables.installationID) AS installation, \(pause),
               UNIX_TIMESTAMP(IF(j.started_at IS NULL, NULL,
                 GREATEST(COALESCE(j.last_processed_at, j.started_at), j.started_at))) AS progress_at,
               l.served_at, UNIX_TIMESTAMP(NOW(6)) AS db_now,
               IF(l.owner IS NULL, NULL, UNIX_TIMESTAMP(l.acquired_at)) AS held_since,
               UNIX_TIMESTAMP(l.heartbeat_at) AS heartbeat
        FROM (SELECT company_id, MIN(id) AS id FROM \(jobs) WHERE status IN \(unfinished) GROUP BY company_id) h
        JOIN \(jobs) j ON j.id = h.id
        LEFT JOIN fanout_leases l ON l.kind = ? AND l.company_id = j.company_id
        UNION ALL
        SELECT 1, id, company_id, template, status, reason, NULL, 0, NULL, NULL, NULL, NULL, NULL,
          UNIX_TIMESTAMP(NOW(6)), NULL, NULL
        FROM \(jobs) WHERE \(JobTables.endedOutside)
        ORDER BY finalise DESC, served_at IS NOT NULL, served_at, id
        """
    }

    /// The tick's session reads committed rows: its UPDATEs' subqueries (the fence, "is the job
    /// still runnable", "is anything unfinished") then read without locking ranges of the shared
    /// items index. Under REPEATABLE READ those next-key locks made one company's writes, applied
    /// on a Galera node, abort another company's statements there (seen in `wsrep_log_conflicts`:
    /// every conflict between companies went away with this; only races for the same free lease
    /// remain). Kept as it is where statement-based binary logging requires REPEATABLE READ.
    static let readCommitted =
        "SET SESSION tx_isolation = IF(@@binlog_format = 'STATEMENT', @@tx_isolation, 'READ-COMMITTED')"

    /// Takes a released lease. A holder taken over before may still have items in flight that
    /// nobody resolved yet (the taker only ended a cancelled job): the insert id says so (1).
    let takeFreeLease = """
        UPDATE fanout_leases SET owner = ?, job_id = NULL, acquired_at = NOW(6),
          heartbeat_at = IF(LAST_INSERT_ID(prev_owner IS NOT NULL) >= 0, NOW(6), NOW(6))
        WHERE kind = ? AND company_id = ? AND owner IS NULL
        """
    /// After the items of a taken-over holder were resolved. Parameters: fence.
    let forgetPreviousHolder =
        "UPDATE fanout_leases SET prev_owner = NULL WHERE kind = ? AND company_id = ? AND owner = ?"
    let insertLease = """
        INSERT IGNORE INTO fanout_leases (kind, company_id, owner, acquired_at, heartbeat_at)
        VALUES (?, ?, ?, NOW(6), NOW(6))
        """
    /// Takes a lease whose holder's heartbeat is older than the given microseconds (or any, with
    /// the last parameter 1: forced), remembering the holder (its items are to be resolved). A
    /// holder with the taker's own token is a batch of the same worker that died with its database
    /// connection: taken back at once, its items resolved the same way. A holder silent for
    /// `idleHolderSeconds` with no item of the company in flight (a tick that died between ending
    /// its job and giving the lease back) is taken over too: nothing of it can be sent twice, and
    /// its writes are fenced. Parameters: owner, kind, company, owner, µs, forced.
    var takeStuckLease: String {
        """
        UPDATE fanout_leases SET prev_owner = owner,
          owner = ?, job_id = NULL, acquired_at = NOW(6), heartbeat_at = NOW(6)
        WHERE kind = ? AND company_id = ? AND owner IS NOT NULL
          AND (owner = ? OR heartbeat_at IS NULL OR heartbeat_at < NOW(6) - INTERVAL ? MICROSECOND OR ? = 1
            OR (heartbeat_at < NOW(6) - INTERVAL \(Self.idleHolderSeconds) SECOND AND NOT EXISTS (
              SELECT 1 FROM \(jobs) j JOIN \(items) i ON i.\(fk) = j.id AND i.status = 'processing'
              WHERE j.company_id = fanout_leases.company_id AND i.claimed_by = fanout_leases.owner)))
        """
    }
    /// Seconds of silence after which a holder with nothing in flight is taken over (a live one
    /// heartbeats every 250 ms while it holds a company).
    static let idleHolderSeconds = 30
    /// Hands the leases of a tick or worker that stops with an error on at once: with no
    /// heartbeat, the next tick takes each over (and resolves its items) instead of waiting
    /// --stuck-after. Parameters: owner.
    static let abandonLeases = "UPDATE fanout_leases SET heartbeat_at = NULL WHERE owner = ?"
    /// Gives the lease back without moving the company in the rotation. Parameters: fence.
    let releaseLeaseUnserved = """
        UPDATE fanout_leases SET owner = NULL, job_id = NULL
        WHERE kind = ? AND company_id = ? AND owner = ?
        """
    let releaseLease = """
        UPDATE fanout_leases SET owner = NULL, job_id = NULL, served_at = NOW(6)
        WHERE kind = ? AND company_id = ? AND owner = ?
        """

    /// The job's status as a number, for `LAST_INSERT_ID(expr)`: 1 + its place in `statusCodes`
    /// (so 1 is an unknown status and 7 a job that no longer exists).
    private func statusCode(_ status: String) -> String {
        "COALESCE(FIELD(\(status), 'pending', 'processing', 'completed', 'failed', 'cancelled'), 6) + 1"
    }

    /// 8 when a suppression of the company was added or changed at or after the given time (NULL:
    /// never asked, as for wallet jobs), else 0; added to `statusCode` in a write's insert id.
    /// `changed_at` is when the writing statement ran, and its row shows only at its commit (or,
    /// on Galera, when another node's write arrives): so rows stamped up to
    /// `suppressionCommitMargin` before the time still count. Parameters: time, time.
    private func suppressionChange(company: String) -> String {
        """
        8 * (? IS NOT NULL AND EXISTS (SELECT 1 FROM fanout_suppressions sc
          WHERE sc.company_id = \(company) AND sc.changed_at >= ? - INTERVAL \(Self.suppressionCommitMargin) SECOND))
        """
    }

    /// Seconds a suppression's commit may come after its `changed_at`, and still be seen mid-batch.
    static let suppressionCommitMargin = 2

    /// Heartbeats the lease and hands the job's status back as the insert id, plus 8 when a
    /// suppression changed (`suppressionChange`). Parameters: job id, time, time, fence.
    var heartbeat: String {
        """
        UPDATE fanout_leases
        SET heartbeat_at = IF(LAST_INSERT_ID(\(statusCode("(SELECT status FROM \(jobs) WHERE id = ?)"))
          + \(suppressionChange(company: "fanout_leases.company_id"))) > 0, NOW(6), NOW(6))
        WHERE kind = ? AND company_id = ? AND owner = ?
        """
    }

    /// The job's part of a write: counters and last activity move with the outcomes just
    /// written, the hand-over mark moves ahead, and the job's status comes back as the insert id
    /// (plus 8 when a suppression changed, `suppressionChange`); fenced by writing the lease row.
    /// Parameters: fence, terminal, failed, outcomes written (any: activity), mark, time, time,
    /// job id. Rows: 2 (lease and job) when held.
    var progress: String {
        """
        \(fencedBy("\(jobs) j"))
          j.processed_items = j.processed_items + ?, j.failed_items = j.failed_items + ?,
          j.last_processed_at = IF(? > 0, NOW(), j.last_processed_at),
          j.handed_through = GREATEST(j.handed_through, ?),
          j.updated_at = IF(LAST_INSERT_ID(\(statusCode("j.status")) + \(suppressionChange(company: "j.company_id")))
            > 0, NOW(), NOW())
        WHERE j.id = ?
        """
    }

    /// Items this holder has in flight whose recipient a suppression now holds back (email only),
    /// with the time of the read. Parameters: company, mail type, job id, owner.
    var suppressedInFlight: String {
        """
        SELECT i.id, \(SuppressionSQL.columns)
        FROM \(items) i FORCE INDEX (\(items)_job_status_id)
        JOIN \(SuppressionSQL.ofItem(company: "?", mailType: "?"))
        WHERE i.\(fk) = ? AND i.status = 'processing' AND i.claimed_by = ?
        """
    }

    /// The database's time, as `NOW(6)` gives it to this session, in text (exact, and compared
    /// with TIMESTAMP columns in the same session).
    static let databaseTime = "SELECT \(nowText) AS now"
    static let nowText = "DATE_FORMAT(NOW(6), '%Y-%m-%d %H:%i:%s.%f')"

    var jobStatus: String { "SELECT status, reason FROM \(jobs) WHERE id = ?" }

    /// Items a dead holder left in flight: delivered again (at-least-once) or failed (at-most-once),
    /// marked in doubt; failed either way once attempts run out. Single-table UPDATE, so the
    /// assignments run left to right on the row's old attempts.
    func resolveInDoubt(_ policy: InDoubtPolicy) -> String {
        let redeliver = policy == .atLeastOnce
        return """
            UPDATE \(items) SET
              status = IF(\(redeliver ? "attempts + 1 >= ?" : "? >= 0"), 'failed', 'pending'),
              reason = IF(status = 'failed', ?, ?),
              processed_at = IF(status = 'failed', NOW(), NULL),
              attempts = attempts + 1, in_doubt = 1, claimed_by = NULL, next_attempt_at = NULL, updated_at = NOW()
            WHERE \(fk) = ? AND status = 'processing' AND \(fence)
            """
    }

    /// Counters recomputed from the items (after in-doubt items were resolved).
    var recount: String {
        """
        UPDATE \(jobs) j SET \(tables.recountedCounters), j.updated_at = NOW()
        WHERE j.id = ? AND \(fence)
        """
    }

    /// Email jobs' mail type, for the jobs query (wallet jobs have none).
    private var mailType: String { kind == .email ? "j.mail_type" : "NULL" }

    /// Email: the longest throttle pause of an SMTP account still running (seconds left), and its
    /// reply, read with the jobs (no statement of its own).
    private var pause: String {
        guard kind == .email else { return "NULL AS pause_left, NULL AS pause_reason" }
        // A throttle's pause ends at paused_at + pause_seconds (`next_at` also moves for pacing).
        let end = "paused_at + pause_seconds"
        let paused = """
            FROM fanout_rates WHERE name LIKE 'smtp:%' AND pause_reason IS NOT NULL AND \(end) > UNIX_TIMESTAMP(NOW(6))
            """
        return """
            (SELECT MAX(\(end)) - UNIX_TIMESTAMP(NOW(6)) \(paused)) AS pause_left,
            (SELECT pause_reason \(paused) ORDER BY \(end) DESC LIMIT 1) AS pause_reason
            """
    }

    /// The next due pending items, read through the (job, status, id) index: 50 index entries
    /// whatever the job's size. (An `UPDATE … ORDER BY id LIMIT n` was seen to examine every
    /// pending row of a 1,000,000-item job before applying the limit: 1.1 s a tick.)
    /// Items due now, in id order. Email: each with the company's suppression of its recipient,
    /// when one holds for this job's mail type (unsubscribe and complaint hold back marketing
    /// mail; hard bounce and manual every mail), and the time of the read (what later writes
    /// ask suppressions changed since). Parameters: (email: company, mail type,) job, limit.
    var duePending: String {
        guard kind == .email else {
            return """
                SELECT id, attempts, NULL AS email, NULL AS name, card_id, platform, data, in_doubt, reason
                FROM \(items) FORCE INDEX (\(items)_job_status_id)
                WHERE \(fk) = ? AND status = 'pending' AND (next_attempt_at IS NULL OR next_attempt_at <= NOW(6))
                ORDER BY id LIMIT ?
                """
        }
        return """
            SELECT i.id, i.attempts, i.email, i.name, NULL AS card_id, NULL AS platform, i.data, i.in_doubt,
                   NULL AS reason, \(SuppressionSQL.columns), \(Self.nowText) AS read_at
            FROM \(items) i FORCE INDEX (\(items)_job_status_id)
            LEFT JOIN \(SuppressionSQL.ofItem(company: "?", mailType: "?"))
            WHERE i.\(fk) = ? AND i.status = 'pending' AND (i.next_attempt_at IS NULL OR i.next_attempt_at <= NOW(6))
            ORDER BY i.id LIMIT ?
            """
    }

    /// Marks the given items in flight for this lease: only those still pending, only while the
    /// lease is held (its row written) and the job runnable. Parameters: fence, owner, item ids,
    /// job id, job id. Rows: the items claimed plus one (the lease), or 0.
    func claim(count: Int) -> String {
        """
        \(fencedBy("\(items) i"))
          i.status = 'processing', i.claimed_by = ?, i.claimed_at = NOW(6), i.updated_at = NOW()
        WHERE i.id IN (\(list(count))) AND i.\(fk) = ? AND i.status = 'pending'
          AND EXISTS (SELECT 1 FROM \(jobs) WHERE id = ? AND status IN \(unfinished))
        """
    }

    /// The first claim of a pending job, in one statement: the items in flight for this lease,
    /// the job processing (`started_at`, and `total_items` when the host left it 0), and the
    /// hand-over mark through the first items; only while the lease is held (its row written) and
    /// the job still pending. The assignments do not read each other (multi-table UPDATE).
    /// Parameters: fence, (job id when counting,) owner, mark, item ids, job id. Rows: the items
    /// claimed plus two (lease and job), or 0.
    func claimAndStart(count: Int, countingTotal: Bool) -> String {
        let total = countingTotal ? "\n  JOIN (SELECT COUNT(*) AS n FROM \(items) WHERE \(fk) = ?) t" : ""
        let filled = countingTotal ? "\n  j.total_items = IF(j.total_items = 0, t.n, j.total_items)," : ""
        return """
            UPDATE fanout_leases fl JOIN \(items) i ON fl.kind = ? AND fl.company_id = ? AND fl.owner = ?
              JOIN \(jobs) j ON j.id = i.\(fk)\(total)
            SET fl.fence = fl.fence + 1, fl.heartbeat_at = NOW(6),
              i.status = 'processing', i.claimed_by = ?, i.claimed_at = NOW(6), i.updated_at = NOW(),
              j.status = 'processing', j.started_at = COALESCE(j.started_at, NOW()),\(filled)
              j.handed_through = GREATEST(j.handed_through, ?), j.updated_at = NOW()
            WHERE i.id IN (\(list(count))) AND i.\(fk) = ? AND i.status = 'pending' AND j.status = 'pending'
            """
    }

    /// The claimed items' ids, for the rare case where some changed between read and claim.
    var claimedIDs: String {
        "SELECT id FROM \(items) WHERE \(fk) = ? AND status = 'processing' AND claimed_by = ?"
    }

    /// What a delivered item's reason says when the host had flipped it to cancelled while it was
    /// in flight: the delivery stands, the host's reason stays as a note.
    private let deliveredOverCancel =
        "CONCAT('Delivered before the cancel reached it', "
        + "IF(reason IS NULL OR reason = '', '', CONCAT(' (', reason, ')')))"

    /// Delivered items of this lease, as an IN list, with one note (or NULL). An item the host
    /// flipped to cancelled while it was in flight is recorded delivered too (single-table
    /// UPDATE: assignments run left to right, so `reason` reads the status before it is set).
    /// Parameters: note, status, code, item ids, job id, owner.
    func recordDelivered(count: Int) -> String {
        """
        UPDATE \(items) SET reason = IF(status = 'cancelled', \(deliveredOverCancel), ?),
          status = ?, \(codeColumn) = ?, attempts = attempts + 1,
          next_attempt_at = NULL, processed_at = NOW(), claimed_by = NULL, updated_at = NOW()
        WHERE id IN (\(list(count))) AND \(fk) = ? AND claimed_by = ? AND status IN ('processing', 'cancelled')
        """
    }

    /// Failed or rescheduled items of this lease, each with its own reason, code and retry wait
    /// (picked by the item's place in the list). An item the host cancelled meanwhile stays
    /// cancelled. Parameters: ids, reasons, codes, retry µs (each `count` long, for FIELD/ELT),
    /// status, ids again (IN), job id, owner.
    func recordDetailed(count: Int, charged: Bool = true) -> String {
        let place = "FIELD(id, \(list(count)))"
        // Wallet: APNs said the device is gone (410): the reason says so first, and when.
        let unregistered =
            kind == .wallet
            ? ",\n  unregistered_at = IF(status = 'failed' AND reason LIKE 'unregistered%', NOW(), NULL)" : ""
        return """
            UPDATE \(items) SET reason = ELT(@place := \(place), \(list(count))),
              \(codeColumn) = ELT(@place, \(list(count))),
              next_attempt_at = NOW(6) + INTERVAL ELT(@place, \(list(count))) MICROSECOND,
              status = ?, attempts = attempts + \(charged ? 1 : 0),
              processed_at = IF(status = 'pending', NULL, NOW()), claimed_by = NULL, updated_at = NOW()\(unregistered)
            WHERE id IN (\(list(count))) AND \(fk) = ? AND claimed_by = ? AND status = 'processing'
            """
    }

    /// Puts the items this lease has in flight back to pending, uncharged: one statement on the
    /// (job, status, id) index. Parameters: job id, owner.
    var unclaim: String {
        """
        UPDATE \(items) SET status = 'pending', claimed_by = NULL, claimed_at = NULL, updated_at = NOW()
        WHERE \(fk) = ? AND status = 'processing' AND claimed_by = ?
        """
    }

    /// After a takeover: items above the job's hand-over mark were claimed but never handed to
    /// the server; they go back to pending, uncharged and not in doubt. Parameters: job id, job
    /// id, fence.
    var putBackNeverHanded: String {
        """
        UPDATE \(items) SET status = 'pending', claimed_by = NULL, claimed_at = NULL, updated_at = NOW()
        WHERE \(fk) = ? AND status = 'processing'
          AND id > (SELECT handed_through FROM \(jobs) WHERE id = ?) AND \(fence)
        """
    }

    /// At the end of a batch: completes the job when nothing is unfinished (then the counters are
    /// recounted from the items, so they end equal to what the items say). The resulting status
    /// comes back as the statement's insert id (LAST_INSERT_ID(expr)), which saves reading the
    /// row again. Parameters: job id, fence.
    var advance: String {
        // The counts are correlated subqueries (on `j.id`), evaluated only when their IF branch
        // is taken. Written with a bound job id they would be constant subqueries, which the
        // server runs while optimising, whatever the IF: a full count of a 1,000,000-item job on
        // every tick (measured: 1.1 s a tick instead of 35 ms).
        """
        UPDATE \(jobs) j SET
          j.status = IF(j.status IN \(unfinished)
              AND NOT EXISTS (SELECT 1 FROM \(items) i WHERE i.\(fk) = j.id AND i.status IN \(unfinished)),
            'completed', j.status),
          j.completed_at = IF(j.status = 'completed' AND j.completed_at IS NULL, NOW(), j.completed_at),
          j.processed_items = IF(j.status = 'completed', \(tables.counted(.processed)), j.processed_items),
          j.failed_items = IF(j.status = 'completed', \(tables.counted(.failed)), j.failed_items),
          \(tables.filledTotal),
          j.updated_at = IF(LAST_INSERT_ID(\(statusCode("j.status"))) > 0, NOW(), NOW())
        WHERE j.id = ? AND \(fence)
        """
    }

    /// What `statusCode` hands back, minus one: nil for a status Fanout does not know, `.none`
    /// past the end for a job that no longer exists.
    static let statusCodes: [JobStatus?] = [nil, .pending, .processing, .completed, .failed, .cancelled]

    /// Rows one statement of a large change touches at most (each statement its own
    /// transaction: ending or cancelling a million items never holds a million rows' locks).
    static let chunkSize = 5000

    /// Ends up to `chunkSize` unfinished items of the job with the given status and reason.
    var finishItems: String {
        """
        UPDATE \(items) SET status = ?, reason = ?, processed_at = NOW(), claimed_by = NULL,
          next_attempt_at = NULL, updated_at = NOW()
        WHERE \(fk) = ? AND status IN \(unfinished) AND \(fence) ORDER BY id LIMIT \(Self.chunkSize)
        """
    }

    /// Ends the job: its status, the reason (a person's own reason for a cancel wins), counters
    /// recounted from the items.
    var finishJob: String {
        """
        UPDATE \(jobs) j SET
          j.status = ?, j.reason = IF(? = 1 AND j.reason IS NOT NULL AND j.reason <> '', j.reason, ?),
          j.completed_at = COALESCE(j.completed_at, NOW()), \(tables.recountedCounters),
          \(tables.filledTotal),
          j.last_processed_at = NOW(), j.updated_at = NOW()
        WHERE j.id = ? AND \(fence)
        """
    }

    /// A delivery server could not be used, or asked for a pause (`paused` 1): `since` stays while
    /// ticks keep meeting the outage (cron meets it every minute), and starts again after five
    /// quiet minutes. Parameters: kind, reason, paused.
    let recordOutage = """
        INSERT INTO fanout_outages (kind, reason, paused, since, last_seen) VALUES (?, ?, ?, NOW(6), NOW(6))
        ON DUPLICATE KEY UPDATE since = IF(last_seen < NOW(6) - INTERVAL 5 MINUTE, NOW(6), since),
          last_seen = NOW(6), reason = VALUES(reason), paused = VALUES(paused)
        """

    /// The record of ticks only needs to reach back as far as the longest --inactive-after.
    let pruneTicks = "DELETE FROM fanout_ticks WHERE kind = ? AND started_at < NOW() - INTERVAL 7 DAY LIMIT 10000"
    let recordTick = """
        INSERT INTO fanout_ticks (kind, owner, host, pid, started_at, heartbeat_at, finished_at,
          jobs_advanced, items_delivered, items_failed, items_retrying, exit_code)
        VALUES (?, ?, ?, ?, FROM_UNIXTIME(?), NOW(6), NOW(6), ?, ?, ?, ?, ?)
        """
}
