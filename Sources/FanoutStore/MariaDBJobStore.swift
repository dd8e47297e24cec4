import FanoutCore
import Logging
import MariaDB
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#endif

/// `JobStore` on MariaDB: the tick's reads and fenced writes, a handful of statements per batch.
///
/// Every write about items and jobs carries the lease condition (or, for items, the owner token
/// in `claimed_by`), so a tick whose lease was taken over changes nothing.
public final class MariaDBJobStore: JobStore {
    private let connection: Connection
    private let sql: JobSQL
    private let logger: Logger
    /// The database's clock as the last `companiesWithWork` read it, and when: later readings
    /// add local monotonic time, so asking for the time costs no statement.
    private var clockAnchor: (database: Date, local: ContinuousClock.Instant) = (Date(), ContinuousClock.now)
    /// When the lease was last heartbeated (by a progress write, or by the heartbeat statement
    /// when a batch has nothing to write).
    private var lastHeartbeat = ContinuousClock.now
    /// Jobs this store made live (processing) already.
    private var startedJobs: Set<UInt64> = []
    /// What an email job's writes know of its company's suppressions.
    private struct SuppressionWatch {
        /// The database time its items were last checked against them (by a claim, or by
        /// `suppressedInFlight`): writes ask whether any changed since.
        var checkedAt: String
        /// A write saw one change since then.
        var changed = false
        /// When `suppressedInFlight` last read: with the commit margin a change is seen by the
        /// writes of a few seconds, and one read every 250 ms is enough for them.
        var read: ContinuousClock.Instant?
    }
    private var suppressionWatches: [UInt64: SuppressionWatch] = [:]

    /// - Parameter connection: used by this store alone, on one thread. Times are exchanged as
    ///   Unix seconds, so the session's time zone does not matter.
    public init(connection: Connection, kind: JobKind, logger: Logger) {
        self.connection = connection
        self.sql = JobSQL(kind: kind)
        self.logger = logger
    }

    public func now() throws -> Date {
        clockAnchor.database.addingTimeInterval((ContinuousClock.now - clockAnchor.local).seconds)
    }

    private func fence(_ lease: Lease) -> [any SQLEncodable] {
        [lease.kind.rawValue, lease.companyID, lease.owner]
    }

    public func companiesWithWork(kind: JobKind) throws -> [CompanyWork] {
        let rows = try query(sql.companiesWithWork, [kind.rawValue])
        if let first = rows.first, let now = Double(sqlValue: first["db_now"]) {
            clockAnchor = (Date(timeIntervalSince1970: now), ContinuousClock.now)
        }
        return try rows.map { row in
            var job = JobRecord(
                kind: kind,
                id: try row.decode("id"),
                companyID: try row.decode("company_id"),
                template: try row.decode("template"),
                status: JobStatus(rawValue: try row.decode("status", as: String.self)) ?? .processing,
                reason: try row.decodeIfPresent("reason"),
                lastProgressAt: Double(sqlValue: row["progress_at"]).map { Date(timeIntervalSince1970: $0) },
                mailType: try row.decodeIfPresent("mail_type"),
                installationID: try row.decodeIfPresent("installation"),
                pauseLeft: Double(sqlValue: row["pause_left"]),
                pauseReason: try row.decodeIfPresent("pause_reason")
            )
            job.totalUnknown = (try row.decodeIfPresent("total_unknown", as: Int.self) ?? 0) == 1
            let holder = Double(sqlValue: row["held_since"]).map { since in
                LeaseHolder(
                    since: Date(timeIntervalSince1970: since),
                    heartbeat: Date(timeIntervalSince1970: Double(sqlValue: row["heartbeat"]) ?? since))
            }
            return CompanyWork(companyID: job.companyID, job: job, holder: holder)
        }
    }

    public func acquireLease(kind: JobKind, companyID: UInt64, owner: String, stuckAfter: Duration, force: Bool) throws
        -> Lease?
    {
        // Before the first lease of the connection's life: an idle tick pays nothing.
        try connection.setUpSession(JobSQL.readCommitted)
        let free = try execute(sql.takeFreeLease, [owner, kind.rawValue, companyID])
        if free.affectedRows == 1 {
            return Lease(kind: kind, companyID: companyID, owner: owner, tookOver: free.lastInsertID == 1)
        }
        if try execute(sql.insertLease, [kind.rawValue, companyID, owner]).affectedRows == 1 {
            return Lease(kind: kind, companyID: companyID, owner: owner, tookOver: false)
        }
        let micros = Int64(stuckAfter.seconds * 1_000_000)
        if try execute(sql.takeStuckLease, [owner, kind.rawValue, companyID, owner, micros, force ? 1 : 0])
            .affectedRows == 1
        {
            logger.warning(
                "took over a lease whose holder showed no sign of life",
                metadata: ["company.id": "\(companyID)", "job.kind": "\(kind.rawValue)"])
            return Lease(kind: kind, companyID: companyID, owner: owner, tookOver: true)
        }
        return nil
    }

    public func resolveInDoubt(_ job: JobRecord, lease: Lease, policy: InDoubtPolicy, maxAttempts: Int) throws -> Int {
        let failedReason =
            policy == .atLeastOnce
            ? "In doubt: the tick delivering it died before recording the outcome, and it has no attempts left"
            : "In doubt: the tick delivering it died before recording the outcome; not resent (at-most-once)"
        let retryReason =
            "In doubt: the tick delivering it died before recording the outcome; "
            + "delivered again with the same message id"
        let first: any SQLEncodable = policy == .atLeastOnce ? maxAttempts : 0
        // Claimed but never handed to the server (above the dead holder's mark): not in doubt.
        _ = try execute(sql.putBackNeverHanded, [job.id, job.id] + fence(lease)).affectedRows
        let resolved = try execute(
            sql.resolveInDoubt(policy),
            [first, failedReason, retryReason, job.id] + fence(lease)
        ).affectedRows
        // A dead holder may have written items and died before the job write that counts them:
        // after a takeover the counters are counted again from the items.
        try execute(sql.recount, [job.id] + fence(lease))
        try execute(sql.forgetPreviousHolder, fence(lease))
        return Int(resolved)
    }

    public func claim(job: JobRecord, limit: Int, lease: Lease, marking: Int) throws -> ClaimedItems {
        let parameters: [any SQLEncodable] =
            job.kind == .email ? [job.companyID, job.mailType ?? "marketing", job.id, limit] : [job.id, limit]
        let rows = try query(sql.duePending, parameters)
        let due = try rows.map { row in
            var item = WorkItem(
                id: try row.decode("id"),
                jobID: job.id,
                attempts: try row.decode("attempts"),
                email: try row.decodeIfPresent("email"),
                name: try row.decodeIfPresent("name"),
                cardID: try row.decodeIfPresent("card_id"),
                platform: try row.decodeIfPresent("platform"),
                data: try row.decodeIfPresent("data"),
                reason: try row.decodeIfPresent("reason"),
                inDoubt: try row.decode("in_doubt", as: Bool.self)
            )
            item.suppression = try SuppressionSQL.reason(in: row)
            return item
        }
        guard let first = rows.first else { return ClaimedItems([]) }
        if job.kind == .email, suppressionWatches[job.id] == nil {
            suppressionWatches[job.id] = SuppressionWatch(checkedAt: try first.decode("read_at"))
        }
        let ids = Self.padded(due.map(\.id))
        let claim = { [connection, sql] in
            // Rows: the items claimed plus the lease row, or none.
            max(
                1,
                try connection.execute(
                    sql.claim(count: ids.count),
                    self.fence(lease) + [lease.owner] + ids + [job.id, job.id]
                ).affectedRows) - 1
        }
        var claimed: UInt64 = 0
        var mark: UInt64 = 0
        if job.status == .pending && !startedJobs.contains(job.id) {
            // Live from the first claim, in its statement: no instant shows items in flight under
            // a pending job, or a processing job that claimed nothing. The same statement marks
            // the first items as possibly handed over, so the first transfers wait for no write.
            let firstMark = marking > 0 ? due[min(marking, due.count) - 1].id : 0
            let counting = job.totalUnknown
            let rows = try retrying {
                try connection.execute(
                    sql.claimAndStart(count: ids.count, countingTotal: counting),
                    fence(lease) + (counting ? [job.id] : []) + [lease.owner, firstMark] + ids + [job.id]
                ).affectedRows
            }
            startedJobs.insert(job.id)
            if rows > 0 {
                claimed = rows - 2
                mark = firstMark
            } else {
                // No longer pending (a person cancelled it, or it was started meanwhile), or the
                // lease is gone: the plain claim finds out which.
                claimed = try retrying { try claim() }
            }
        } else {
            claimed = try retrying { try claim() }
        }
        if claimed == UInt64(due.count) { return ClaimedItems(due, handedThrough: mark) }
        if claimed == 0 { return ClaimedItems([]) }
        // Someone (a person cancelling items by SQL) changed a few between the read and the claim.
        let mine = Set(
            try query(sql.claimedIDs, [job.id, lease.owner]).map { try $0.decode("id", as: UInt64.self) })
        return ClaimedItems(due.filter { mine.contains($0.id) }, handedThrough: mark)
    }

    public func write(_ updates: [ItemUpdate], handedThrough: UInt64, job: JobRecord, lease: Lease) throws -> LeaseCheck
    {
        if updates.isEmpty && (handedThrough == 0 || ContinuousClock.now - lastHeartbeat >= .seconds(1)) {
            return try heartbeat(job, lease: lease)
        }
        var terminal = 0
        var failed = 0
        /// Delivered items by reply code and note (a push shared with another item says so).
        struct Delivered: Hashable {
            var code: Int?
            var note: String?
        }
        var delivered: [Delivered: [UInt64]] = [:]
        var failures: [ItemUpdate] = []
        var retries: [ItemUpdate] = []
        var suppressed: [ItemUpdate] = []
        for update in updates {
            switch update.status {
            case .pending: retries.append(update)
            case .failed: failures.append(update)
            case .suppressed: suppressed.append(update)
            default: delivered[Delivered(code: update.code, note: update.reason), default: []].append(update.itemID)
            }
        }
        for (group, itemIDs) in delivered {
            let ids = Self.padded(itemIDs)
            let note = group.note.map { Self.clip($0) }
            terminal += Int(
                try execute(
                    sql.recordDelivered(count: ids.count),
                    [note, job.kind.deliveredStatus.rawValue, group.code] + ids + [job.id, lease.owner]
                ).affectedRows)
        }
        // A wait the platform asked for is written apart: it charges no attempt.
        let waits = retries.filter { !$0.charged }
        retries.removeAll { !$0.charged }
        for group in [failures, retries, waits, suppressed] where !group.isEmpty {
            let written = try recordDetailed(group, job: job, lease: lease)
            if group[0].status != .pending { terminal += written }
            if group[0].status == .failed { failed += written }
        }
        // The job's counters move by what was written, in the same round as the items.
        let since = suppressionWatches[job.id]?.checkedAt
        let result = try execute(
            sql.progress, fence(lease) + [terminal, failed, updates.count, handedThrough, since, since, job.id])
        // Nothing changed: the lease is lost, or the job was deleted (the heartbeat tells which).
        if result.affectedRows == 0 { return try heartbeat(job, lease: lease) }
        // The progress write heartbeated the lease row too.
        lastHeartbeat = .now
        return try held(job, insertID: result.lastInsertID)
    }

    /// Heartbeats the lease and reads the job's status.
    private func heartbeat(_ job: JobRecord, lease: Lease) throws -> LeaseCheck {
        let since = suppressionWatches[job.id]?.checkedAt
        let result = try execute(sql.heartbeat, [job.id, since, since] + fence(lease))
        lastHeartbeat = .now
        if result.affectedRows == 0 { return .lost }
        return try held(job, insertID: result.lastInsertID)
    }

    public func suppressedInFlight(job: JobRecord, lease: Lease) throws -> [UInt64: String] {
        guard var watch = suppressionWatches[job.id], watch.changed else { return [:] }
        if let last = watch.read, ContinuousClock.now - last < .milliseconds(250) { return [:] }
        watch.changed = false
        watch.read = .now
        // The time first: a suppression committed during the read below is asked about again.
        let now: String = try queryFirst(JobSQL.databaseTime)?.decode("now") ?? ""
        var found: [UInt64: String] = [:]
        for row in try query(
            sql.suppressedInFlight, [job.companyID, job.mailType ?? "marketing", job.id, lease.owner])
        {
            found[try row.decode("id")] = try SuppressionSQL.reason(in: row)
        }
        watch.checkedAt = now
        suppressionWatches[job.id] = watch
        return found
    }

    /// Outcomes each with its own reason, code and retry wait, all of one status.
    private func recordDetailed(_ updates: [ItemUpdate], job: JobRecord, lease: Lease) throws -> Int {
        var written = 0
        for start in stride(from: 0, to: updates.count, by: 200) {
            let chunk = Array(updates[start..<min(start + 200, updates.count)])
            let padded = Self.padded(chunk.map(\.itemID))
            // The values padded like the ids, so the same few prepared statements serve any size.
            let rows = chunk + Array(repeating: chunk[chunk.count - 1], count: padded.count - chunk.count)
            var parameters: [any SQLEncodable] = []
            parameters.reserveCapacity(padded.count * 5 + 3)
            parameters.append(contentsOf: padded.map { $0 as any SQLEncodable })
            parameters.append(contentsOf: rows.map { $0.reason.map { Self.clip($0) } as any SQLEncodable })
            parameters.append(contentsOf: rows.map { $0.code as any SQLEncodable })
            parameters.append(
                contentsOf: rows.map { $0.retryDelay.map { Int64($0.seconds * 1_000_000) } as any SQLEncodable })
            parameters.append(chunk[0].status.rawValue)
            parameters.append(contentsOf: padded.map { $0 as any SQLEncodable })
            parameters.append(job.id)
            parameters.append(lease.owner)
            written += Int(
                try execute(sql.recordDetailed(count: padded.count, charged: chunk[0].charged), parameters)
                    .affectedRows)
        }
        return written
    }

    /// The job's status from a write's insert id (see `JobSQL.statusCode`), with the reason read
    /// when the job ended outside Fanout (rare: once a job); notes a suppression change (8 added).
    private func held(_ job: JobRecord, insertID: UInt64) throws -> LeaseCheck {
        if insertID & 8 != 0 { suppressionWatches[job.id]?.changed = true }
        let index = Int(insertID & 7) - 1
        guard JobSQL.statusCodes.indices.contains(index) else {
            return .held(.cancelled, reason: "The job was deleted")
        }
        let status = JobSQL.statusCodes[index] ?? .processing
        guard status.isTerminal else { return .held(status, reason: nil) }
        guard let row = try queryFirst(sql.jobStatus, [job.id]) else {
            return .held(.cancelled, reason: "The job was deleted")
        }
        return .held(
            JobStatus(rawValue: try row.decode("status", as: String.self)) ?? status,
            reason: try row.decodeIfPresent("reason"))
    }

    /// `ids` grown to the next of a few list lengths by repeating the last id (an UPDATE changes a
    /// row once however often the IN list names it): groups of any size then share a handful of
    /// prepared statements instead of preparing one per size.
    static func padded(_ ids: [UInt64]) -> [UInt64] {
        guard let last = ids.last else { return ids }
        var size = 8
        while size < ids.count { size = size < 64 ? size * 2 : size + size / 2 }
        return ids + Array(repeating: last, count: size - ids.count)
    }

    public func unclaim(job: JobRecord, lease: Lease) throws {
        try execute(sql.unclaim, [job.id, lease.owner])
    }

    public func advance(_ job: JobRecord, lease: Lease) throws -> JobStatus? {
        let result = try execute(sql.advance, [job.id] + fence(lease))
        if result.affectedRows == 0 { return nil }
        let index = Int(result.lastInsertID) - 1
        let status = JobSQL.statusCodes.indices.contains(index) ? JobSQL.statusCodes[index] ?? .processing : .cancelled
        if status.isTerminal { forgetSuppressionChecks(job.id) }
        return status
    }

    /// A long-lived worker keeps no per-job state for jobs that ended.
    private func forgetSuppressionChecks(_ jobID: UInt64) {
        suppressionWatches[jobID] = nil
    }

    public func finish(_ job: JobRecord, status: JobStatus, reason: String, lease: Lease) throws {
        let itemStatus: ItemStatus = status == .cancelled ? .cancelled : .failed
        let clipped = Self.clip(reason)
        // A chunk a statement: ending a million items never holds a million rows' locks.
        while try execute(sql.finishItems, [itemStatus.rawValue, clipped, job.id] + fence(lease))
            .affectedRows >= JobSQL.chunkSize
        {}
        let keepPersonsReason = status == .cancelled ? 1 : 0
        try execute(sql.finishJob, [status.rawValue, keepPersonsReason, clipped, job.id] + fence(lease))
        forgetSuppressionChecks(job.id)
    }

    /// Hands on the leases `owner` still holds, over a connection of its own (the tick's may be
    /// the one that broke); best effort: a database that cannot be reached leaves them to
    /// --stuck-after. Returns how many were handed on.
    @discardableResult
    public static func handOnLeases(of owner: String, database: ConnectionConfiguration) -> Int {
        guard let connection = try? Connection(database) else { return 0 }
        defer { connection.close() }
        return (try? Int(connection.execute(JobSQL.abandonLeases, [owner]).affectedRows)) ?? 0
    }

    /// Conflicts a statement may meet and that go away when it is tried again: a deadlock or a
    /// Galera certification failure (1213), a lock wait timeout (1205), a node not ready (1047).
    /// Each statement here is its own transaction (the claim's two are retried together), so
    /// trying one again is what the server asks for; five tries, 10 ms doubling with jitter, and
    /// none started after 10 s (lock waits are long: the writer must not stall much longer).
    private func retrying<T>(_ body: () throws -> T) throws -> T {
        var wait = 10_000.0
        var attempt = 1
        let started = ContinuousClock.now
        while true {
            do {
                return try body()
            } catch let error as MariaDBError
                where error.isConflict && attempt < 5 && ContinuousClock.now - started < .seconds(10)
            {
                logger.debug("conflict, trying again", metadata: ["mariadb.error": "\(error.number)"])
                usleep(UInt32(wait * Double.random(in: 0.5...1.5)))
                wait *= 2
                attempt += 1
            }
        }
    }

    @discardableResult
    private func execute(_ sql: String, _ parameters: [any SQLEncodable] = []) throws -> ExecuteResult {
        try retrying { try connection.execute(sql, parameters) }
    }

    private func query(_ sql: String, _ parameters: [any SQLEncodable] = []) throws -> [Row] {
        try retrying { try connection.query(sql, parameters) }
    }

    private func queryFirst(_ sql: String, _ parameters: [any SQLEncodable] = []) throws -> Row? {
        try retrying { try connection.queryFirst(sql, parameters) }
    }

    public func releaseLease(_ lease: Lease, served: Bool) throws {
        try execute(served ? sql.releaseLease : sql.releaseLeaseUnserved, fence(lease))
    }

    public func recordTick(_ summary: TickSummary, owner: String) throws {
        let exit = summary.unavailable == nil ? 0 : 69
        try execute(
            sql.recordTick,
            [
                summary.kind.rawValue, owner, Self.hostName, Int64(getpid()), summary.startedAt.timeIntervalSince1970,
                summary.jobsAdvanced, summary.delivered, summary.failed, summary.retrying, exit,
            ])
        if let unavailable = summary.unavailable ?? summary.paused {
            // For the people looking at the jobs: which server holds them up, since when.
            let paused = summary.unavailable == nil ? 1 : 0
            try execute(sql.recordOutage, [summary.kind.rawValue, String(unavailable.prefix(1000)), paused])
        }
        // Now and then (1 tick in 100), forget ticks older than a week.
        if UInt8.random(in: 0..<100) == 0 {
            try execute(sql.pruneTicks, [summary.kind.rawValue])
        }
    }

    /// Reasons are TEXT; a server reply can be long. Keep the start, which says what happened.
    static func clip(_ text: String) -> String {
        text.utf8.count <= 2000 ? text : String(text.prefix(1000)) + " …"
    }

    public static let hostName: String = {
        var buffer = [CChar](repeating: 0, count: 256)
        gethostname(&buffer, 255)
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }()
}

@available(*, unavailable)
extension MariaDBJobStore: Sendable {}
