import FanoutCore

/// The statements of the tick, for one kind of job. Table and column names come from `JobKind`
/// (constants, never input); every value is a bound parameter.
struct JobSQL {
    let kind: JobKind
    private var jobs: String { kind.jobTable }
    private var items: String { kind.itemTable }
    private var fk: String { kind.itemJobColumn }
    /// The column an item's reply code goes to: the contract's http_status for wallet items,
    /// Fanout's response_code for email items.
    var codeColumn: String { kind == .wallet ? "http_status" : "response_code" }

    /// Lease ownership, as a condition every fenced write carries: kind, company, owner.
    private let fence = "EXISTS (SELECT 1 FROM fanout_leases WHERE kind = ? AND company_id = ? AND owner = ?)"
    private let unfinished = "('pending', 'processing')"
    private var terminal: String { "('\(kind.deliveredStatus.rawValue)', 'failed', 'cancelled')" }

    /// Each company's oldest runnable job (least recently served company first), and jobs
    /// cancelled or failed outside Fanout whose items still need ending (first of all).
    var companiesWithWork: String {
        """
        SELECT 0 AS finalise, j.id, j.company_id, j.template, j.status, j.reason,
               UNIX_TIMESTAMP(IF(j.started_at IS NULL, NULL, GREATEST(COALESCE(j.last_processed_at, j.started_at), j.started_at))) AS progress_at,
               l.served_at, UNIX_TIMESTAMP(NOW(6)) AS db_now
        FROM (SELECT company_id, MIN(id) AS id FROM \(jobs) WHERE status IN \(unfinished) GROUP BY company_id) h
        JOIN \(jobs) j ON j.id = h.id
        LEFT JOIN fanout_leases l ON l.kind = ? AND l.company_id = j.company_id
        UNION ALL
        SELECT 1, id, company_id, template, status, reason, NULL, NULL, UNIX_TIMESTAMP(NOW(6))
        FROM \(jobs) WHERE status IN ('cancelled', 'failed') AND completed_at IS NULL
        ORDER BY finalise DESC, served_at IS NOT NULL, served_at, id
        """
    }

    /// Takes a released lease. A holder taken over before may still have items in flight that
    /// nobody resolved yet (the taker only ended a cancelled job): the insert id says so (1).
    let takeFreeLease = """
        UPDATE fanout_leases SET owner = ?, job_id = NULL, acquired_at = NOW(6), heartbeat_at = NOW(6),
          handed_through = LAST_INSERT_ID(prev_owner IS NOT NULL) * 0
        WHERE kind = ? AND company_id = ? AND owner IS NULL
        """
    /// After the items of a taken-over holder were resolved. Parameters: fence.
    let forgetPreviousHolder = """
        UPDATE fanout_leases SET prev_owner = NULL, prev_handed_through = 0
        WHERE kind = ? AND company_id = ? AND owner = ?
        """
    let insertLease = """
        INSERT IGNORE INTO fanout_leases (kind, company_id, owner, acquired_at, heartbeat_at)
        VALUES (?, ?, ?, NOW(6), NOW(6))
        """
    /// Takes a lease whose holder's heartbeat is older than the given microseconds (or any, with
    /// the last parameter 1: forced), keeping the old holder and its hand-over mark for
    /// `putBackNeverHanded` (single-table UPDATE: assignments run left to right on old values).
    let takeStuckLease = """
        UPDATE fanout_leases SET prev_owner = owner, prev_handed_through = handed_through,
          owner = ?, job_id = NULL, acquired_at = NOW(6), heartbeat_at = NOW(6), handed_through = 0
        WHERE kind = ? AND company_id = ? AND owner IS NOT NULL AND owner <> ?
          AND (heartbeat_at IS NULL OR heartbeat_at < NOW(6) - INTERVAL ? MICROSECOND OR ? = 1)
        """
    let releaseLease = """
        UPDATE fanout_leases SET owner = NULL, job_id = NULL, served_at = NOW(6), handed_through = 0
        WHERE kind = ? AND company_id = ? AND owner = ?
        """

    /// The job's status as a number, for `LAST_INSERT_ID(expr)`: 1 + its place in `statusCodes`
    /// (so 1 is an unknown status and 7 a job that no longer exists).
    private func statusCode(_ status: String) -> String {
        "COALESCE(FIELD(\(status), 'pending', 'processing', 'completed', 'failed', 'cancelled'), 6) + 1"
    }

    /// The lease's part of every write made while a batch runs: the heartbeat, the hand-over
    /// mark (GREATEST: it only moves ahead), and the job's status handed back as the insert id.
    /// Parameters: the mark.
    private func leaseProgress(status: String) -> String {
        """
        l.heartbeat_at = IF(LAST_INSERT_ID(\(statusCode(status))) > 0, NOW(6), NOW(6)),
            l.handed_through = GREATEST(l.handed_through, ?)
        """
    }

    /// The lease row held by this owner; the first table of every write made while a batch runs,
    /// so the write is fenced by a join (no lease, no rows) and always writes the lease row
    /// (which Galera needs to see two nodes' writers conflict).
    private let leaseTable = "fanout_leases l"
    private let leaseHeld = "l.kind = ? AND l.company_id = ? AND l.owner = ?"

    /// A heartbeat with nothing to record: moves the hand-over mark and reads the job's status.
    /// Parameters: job id, mark, fence.
    var heartbeat: String {
        """
        UPDATE \(leaseTable) SET \(leaseProgress(status: "(SELECT status FROM \(jobs) WHERE id = ?)"))
        WHERE \(leaseHeld)
        """
    }

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
        UPDATE \(jobs) j SET
          processed_items = (SELECT COUNT(*) FROM \(items) i WHERE i.\(fk) = j.id AND i.status IN \(terminal)),
          failed_items = (SELECT COUNT(*) FROM \(items) i WHERE i.\(fk) = j.id AND i.status = 'failed'),
          updated_at = NOW()
        WHERE j.id = ? AND \(fence)
        """
    }

    /// The next due pending items, read through the (job, status, id) index: 50 index entries
    /// whatever the job's size. (An `UPDATE … ORDER BY id LIMIT n` was seen to examine every
    /// pending row of a 1,000,000-item job before applying the limit: 1.1 s a tick.)
    var duePending: String {
        let columns = kind == .email ? "email, name, NULL AS card_id, NULL AS platform" : "NULL AS email, NULL AS name, card_id, platform"
        return """
            SELECT id, attempts, \(columns), data, in_doubt FROM \(items) FORCE INDEX (\(items)_job_status_id)
            WHERE \(fk) = ? AND status = 'pending' AND (next_attempt_at IS NULL OR next_attempt_at <= NOW(6))
            ORDER BY id LIMIT ?
            """
    }

    /// Marks the given items in flight for this lease (only those still pending, only while the
    /// lease is held and the job runnable) and, in the same statement, makes the job live:
    /// processing, `started_at`, `total_items` when the host left it 0. Changes the lease row
    /// (heartbeat, job) and the job row besides the items: rows changed = items + 2.
    /// Parameters: job id, item ids, fence.
    func claim(count: Int) -> String {
        """
        UPDATE \(leaseTable)
        JOIN \(jobs) j ON j.id = ? AND j.status IN \(unfinished)
        JOIN \(items) i ON i.\(fk) = j.id AND i.status = 'pending'
          AND i.id IN (\(Array(repeating: "?", count: count).joined(separator: ", ")))
        SET i.status = 'processing', i.claimed_by = l.owner, i.claimed_at = NOW(6), i.updated_at = NOW(),
            j.status = 'processing', j.started_at = COALESCE(j.started_at, NOW()),
            j.total_items = IF(j.total_items = 0, (SELECT COUNT(*) FROM \(items) t WHERE t.\(fk) = j.id), j.total_items),
            j.updated_at = NOW(),
            l.heartbeat_at = NOW(6), l.job_id = j.id
        WHERE \(leaseHeld)
        """
    }

    /// The claimed items' ids, for the rare case where some changed between read and claim.
    var claimedIDs: String {
        "SELECT id FROM \(items) WHERE \(fk) = ? AND status = 'processing' AND claimed_by = ?"
    }

    /// What a delivered item's reason says when the host had flipped it to cancelled while it was
    /// in flight: the delivery stands, the host's reason stays as a note.
    private var deliveredOverCancel: String {
        "CONCAT('Delivered before the cancel reached it', IF(i.reason IS NULL OR i.reason = '', '', CONCAT(' (', i.reason, ')')))"
    }

    /// The job's part of an outcome write: its counters and last activity move with the items.
    /// Parameters: terminal items, failed items.
    private let jobProgress = """
        j.processed_items = j.processed_items + ?, j.failed_items = j.failed_items + ?,
            j.last_processed_at = NOW(), j.updated_at = NOW()
        """

    /// One statement for a group of outcomes, the values as a derived table; with the job's
    /// counters and the lease's heartbeat and hand-over mark. An item the host flipped to
    /// cancelled while in flight is recorded delivered if it was, and stays cancelled otherwise.
    /// Rows changed = items + 2. Parameters: job id, (id, status, reason, code, retry µs) per item,
    /// terminal, failed, mark, fence.
    func record(count: Int) -> String {
        let rows = (0..<count).map { i in
            i == 0 ? "SELECT ? AS id, ? AS status, ? AS reason, ? AS code, ? AS retry_us" : "SELECT ?, ?, ?, ?, ?"
        }.joined(separator: " UNION ALL ")
        let delivered = "'\(kind.deliveredStatus.rawValue)'"
        // Assignments to one table run left to right: `i.status` is read before it is set last.
        return """
            UPDATE \(leaseTable)
            JOIN \(jobs) j ON j.id = ?
            JOIN (\(rows)) v
            JOIN \(items) i ON i.id = v.id AND i.\(fk) = j.id AND i.claimed_by = l.owner
              AND i.status IN ('processing', 'cancelled')
            SET i.reason = IF(i.status = 'cancelled', IF(v.status = \(delivered), \(deliveredOverCancel), i.reason), v.reason),
                i.\(codeColumn) = v.code,
                i.attempts = i.attempts + 1,
                i.next_attempt_at = IF(v.retry_us IS NULL OR i.status = 'cancelled', NULL, NOW(6) + INTERVAL v.retry_us MICROSECOND),
                i.processed_at = IF(v.status = 'pending' AND i.status <> 'cancelled', NULL, NOW()),
                i.status = IF(i.status = 'cancelled' AND v.status <> \(delivered), 'cancelled', v.status),
                i.claimed_by = NULL, i.updated_at = NOW(),
                \(jobProgress),
                \(leaseProgress(status: "j.status"))
            WHERE \(leaseHeld)
            """
    }

    /// The common case, delivered items with no reason, as an IN list (much cheaper for the
    /// server than a derived table); otherwise as `record`. Parameters: job id, status, code,
    /// item ids, terminal, failed, mark, fence.
    func recordDelivered(count: Int) -> String {
        """
        UPDATE \(leaseTable)
        JOIN \(jobs) j ON j.id = ?
        JOIN \(items) i ON i.\(fk) = j.id AND i.claimed_by = l.owner AND i.status IN ('processing', 'cancelled')
          AND i.id IN (\(Array(repeating: "?", count: count).joined(separator: ", ")))
        SET i.reason = IF(i.status = 'cancelled', \(deliveredOverCancel), NULL),
            i.status = ?, i.\(codeColumn) = ?, i.attempts = i.attempts + 1,
            i.next_attempt_at = NULL, i.processed_at = NOW(), i.claimed_by = NULL, i.updated_at = NOW(),
            \(jobProgress),
            \(leaseProgress(status: "j.status"))
        WHERE \(leaseHeld)
        """
    }

    /// Puts items in flight back to pending, uncharged. Parameters: item ids, owner.
    func unclaim(count: Int) -> String {
        """
        UPDATE \(items) SET status = 'pending', claimed_by = NULL, claimed_at = NULL, updated_at = NOW()
        WHERE id IN (\(Array(repeating: "?", count: count).joined(separator: ", "))) AND status = 'processing' AND claimed_by = ?
        """
    }

    /// After a takeover: the dead holder's items above its hand-over mark were claimed but never
    /// handed to the server; they go back to pending, uncharged and not in doubt.
    /// Parameters: job id, fence.
    var putBackNeverHanded: String {
        """
        UPDATE \(leaseTable)
        JOIN \(items) i ON i.\(fk) = ? AND i.status = 'processing'
          AND i.claimed_by = l.prev_owner AND i.id > l.prev_handed_through
        SET i.status = 'pending', i.claimed_by = NULL, i.claimed_at = NULL, i.updated_at = NOW()
        WHERE \(leaseHeld)
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
          j.status = IF(j.status IN \(unfinished) AND NOT EXISTS (SELECT 1 FROM \(items) i WHERE i.\(fk) = j.id AND i.status IN \(unfinished)), 'completed', j.status),
          j.completed_at = IF(j.status = 'completed' AND j.completed_at IS NULL, NOW(), j.completed_at),
          j.processed_items = IF(j.status = 'completed', (SELECT COUNT(*) FROM \(items) i WHERE i.\(fk) = j.id AND i.status IN \(terminal)), j.processed_items),
          j.failed_items = IF(j.status = 'completed', (SELECT COUNT(*) FROM \(items) i WHERE i.\(fk) = j.id AND i.status = 'failed'), j.failed_items),
          j.total_items = IF(j.total_items = 0, (SELECT COUNT(*) FROM \(items) i WHERE i.\(fk) = j.id), j.total_items),
          j.updated_at = IF(LAST_INSERT_ID(\(statusCode("j.status"))) > 0, NOW(), NOW())
        WHERE j.id = ? AND \(fence)
        """
    }

    /// What `statusCode` hands back, minus one: nil for a status Fanout does not know, `.none`
    /// past the end for a job that no longer exists.
    static let statusCodes: [JobStatus?] = [nil, .pending, .processing, .completed, .failed, .cancelled]

    /// Ends every unfinished item of the job with the given status and reason.
    var finishItems: String {
        """
        UPDATE \(items) SET status = ?, reason = ?, processed_at = NOW(), claimed_by = NULL, next_attempt_at = NULL, updated_at = NOW()
        WHERE \(fk) = ? AND status IN \(unfinished) AND \(fence)
        """
    }

    /// Ends the job: its status, the reason (a person's own reason for a cancel wins), counters
    /// recounted from the items.
    var finishJob: String {
        """
        UPDATE \(jobs) SET
          status = ?, reason = IF(? = 1 AND reason IS NOT NULL AND reason <> '', reason, ?),
          completed_at = COALESCE(completed_at, NOW()),
          processed_items = (SELECT COUNT(*) FROM \(items) WHERE \(fk) = ? AND status IN \(terminal)),
          failed_items = (SELECT COUNT(*) FROM \(items) WHERE \(fk) = ? AND status = 'failed'),
          total_items = IF(total_items = 0, (SELECT COUNT(*) FROM \(items) WHERE \(fk) = ?), total_items),
          last_processed_at = NOW(), updated_at = NOW()
        WHERE id = ? AND \(fence)
        """
    }

    var waitingForRetry: String {
        "SELECT 1 AS waiting FROM \(items) WHERE \(fk) = ? AND status = 'pending' AND next_attempt_at > NOW(6) LIMIT 1"
    }

    /// The record of ticks only needs to reach back as far as the longest --inactive-after.
    let pruneTicks = "DELETE FROM fanout_ticks WHERE kind = ? AND started_at < NOW() - INTERVAL 7 DAY LIMIT 10000"
    let tickStarts = "SELECT UNIX_TIMESTAMP(started_at) AS started FROM fanout_ticks WHERE kind = ? AND started_at > FROM_UNIXTIME(?) ORDER BY started_at LIMIT 100000"
    let recordTick = """
        INSERT INTO fanout_ticks (kind, owner, host, pid, started_at, heartbeat_at, finished_at, jobs_advanced, items_delivered, items_failed, items_retrying, exit_code)
        VALUES (?, ?, ?, ?, FROM_UNIXTIME(?), NOW(6), NOW(6), ?, ?, ?, ?, ?)
        """
}
