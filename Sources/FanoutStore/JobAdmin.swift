import FanoutCore
import MariaDB
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Why an operator's request about a job cannot be done.
public struct JobAdminError: Error, Sendable, CustomStringConvertible {
    public var description: String
}

/// One line of `fanout jobs`.
public struct JobSummary: Sendable {
    public var kind: JobKind
    public var id: UInt64
    public var companyID: UInt64
    public var template: String
    public var status: String
    public var reason: String?
    public var total: Int
    public var processed: Int
    public var failed: Int
    public var createdAt: Double?
    public var startedAt: Double?
    public var lastActivityAt: Double?
    public var now: Double
    /// What holds the unfinished job up, when something does: its delivery server's outage (met
    /// by a tick after the job's last progress, in the last three minutes) …
    public var outage: String?
    public var outageSince: Double?
    /// The outage is a pause the server asked for (throttle, hourly or daily limit): its reason
    /// says until when.
    public var outageIsPause: Bool
    /// … or an earlier unfinished job of its company (one job per company at a time).
    public var behindJob: UInt64?
}

/// Which jobs a list shows.
public struct JobFilter: Sendable {
    public var status: String?
    public var companyID: UInt64?
    /// Only this job.
    public var id: UInt64?
    /// Created at or after / before these Unix seconds.
    public var createdFrom: Double?
    public var createdBefore: Double?
    /// How many at most, newest first.
    public var limit: Int

    public init(
        status: String? = nil, companyID: UInt64? = nil, id: UInt64? = nil, createdFrom: Double? = nil,
        createdBefore: Double? = nil, limit: Int = 50
    ) {
        self.status = status
        self.companyID = companyID
        self.id = id
        self.createdFrom = createdFrom
        self.createdBefore = createdBefore
        self.limit = limit
    }
}

/// What a person does to jobs from the command line: cancel, retry, list. Safe while a tick
/// is delivering the same job: items in flight are left to that tick (its writes are fenced),
/// and the job's status is what the tick re-reads.
public struct JobAdmin {
    private let connection: Connection

    public init(connection: Connection) {
        self.connection = connection
    }

    /// Cancels the job and its pending items; items in flight end `cancelled` when the tick
    /// delivering them (or the next tick) sees the job's status.
    /// - Returns: how many items were cancelled now.
    @discardableResult
    public func cancel(kind: JobKind, id: UInt64, reason: String) throws -> Int {
        let sql = AdminSQL(kind: kind)
        // The job first, in a short transaction: from then on no tick claims its items.
        try connection.transaction {
            guard let row = try connection.queryFirst(sql.lockJob, [id]) else {
                throw JobAdminError(description: "no \(kind.rawValue) job \(id)")
            }
            let status = try row.decode("status", as: String.self)
            if let parsed = JobStatus(rawValue: status), parsed.isTerminal {
                throw JobAdminError(description: "\(kind.rawValue) job \(id) is already \(status): nothing to cancel")
            }
            try connection.execute(sql.cancelJob, [reason, id])
        }
        // Then its items, a chunk a statement, so no transaction holds a million rows' locks.
        let cancelled = try chunked(sql.cancelPendingItems, [reason, id])
        try connection.execute(sql.recount, [id])
        return cancelled
    }

    /// Puts failed items (all, or the given ones) back to pending with their attempts kept, and
    /// the job back to processing.
    /// - Returns: how many items will be tried again.
    @discardableResult
    public func retry(kind: JobKind, id: UInt64, itemIDs: [UInt64] = []) throws -> Int {
        let sql = AdminSQL(kind: kind)
        guard let row = try connection.queryFirst(sql.jobStatus, [id]) else {
            throw JobAdminError(description: "no \(kind.rawValue) job \(id)")
        }
        if try row.decode("status", as: String.self) == JobStatus.cancelled.rawValue {
            throw JobAdminError(
                description: "\(kind.rawValue) job \(id) was cancelled: cancel is final, nothing retried")
        }
        // The items first, a chunk a statement; the job is reopened once they are pending (a
        // tick seeing it runnable before would find nothing to do and complete it again).
        let retried: Int
        if itemIDs.isEmpty {
            retried = try chunked(sql.retryFailed, [id])
        } else {
            retried = Int(
                try connection.execute(sql.retrySomeFailed(count: itemIDs.count), [id] + itemIDs).affectedRows)
        }
        if retried == 0 {
            throw JobAdminError(
                description:
                    "\(kind.rawValue) job \(id) has no failed items\(itemIDs.isEmpty ? "" : " among those given"): "
                    + "nothing to retry"
            )
        }
        try connection.transaction {
            // Cancelled meanwhile: cancel is final, the items just put back end with it.
            if try connection.queryFirst(sql.lockJob, [id]).map({ try $0.decode("status", as: String.self) })
                == JobStatus.cancelled.rawValue
            {
                return
            }
            try connection.execute(sql.reopenJob, [id])
        }
        return retried
    }

    /// One item of a new job: its recipient (`email`, `name`) or card (`card_id`, `platform`) and
    /// its data object as JSON text.
    public struct NewItem: Sendable {
        public var target: String
        public var detail: String?
        public var data: String?

        public init(target: String, detail: String?, data: String?) {
            self.target = target
            self.detail = detail
            self.data = data
        }
    }

    /// Creates a pending job and its items in one transaction, many rows per INSERT: `fill`
    /// adds the items to the `NewItems` it is given.
    /// - Returns: the new job's id.
    public func create(
        kind: JobKind, companyID: UInt64, template: String, total: Int, fill: (NewItems) throws -> Void
    ) throws -> UInt64 {
        let sql = AdminSQL(kind: kind)
        return try connection.transaction {
            let job = try connection.execute(sql.createJob, [companyID, template, total]).lastInsertID
            let items = NewItems(connection: connection, sql: sql, job: job)
            try fill(items)
            try items.flush()
            return job
        }
    }

    /// The items of a job being created, written a thousand rows per INSERT.
    public final class NewItems {
        private let connection: Connection
        private let sql: AdminSQL
        private let job: UInt64
        private var pending: [NewItem] = []
        /// Items written so far.
        public private(set) var written = 0

        init(connection: Connection, sql: AdminSQL, job: UInt64) {
            self.connection = connection
            self.sql = sql
            self.job = job
        }

        /// Adds an item; returns true when this wrote a full INSERT (`written` moved).
        @discardableResult
        public func add(_ item: NewItem) throws -> Bool {
            pending.append(item)
            guard pending.count == AdminSQL.createRows else { return false }
            try flush()
            return true
        }

        func flush() throws {
            guard !pending.isEmpty else { return }
            var parameters: [any SQLEncodable] = []
            parameters.reserveCapacity(pending.count * 4)
            for item in pending {
                parameters.append(job)
                if sql.kind == .email { parameters.append(item.target) } else { parameters.append(UInt64(item.target)) }
                parameters.append(item.detail)
                parameters.append(item.data)
            }
            try connection.execute(sql.createItems(count: pending.count), parameters)
            written += pending.count
            pending.removeAll(keepingCapacity: true)
        }
    }

    /// Runs `statement` (which ends in `LIMIT chunkSize`) until it changes fewer rows than that.
    private func chunked(_ statement: String, _ parameters: [any SQLEncodable]) throws -> Int {
        var total = 0
        while true {
            let changed = Int(try connection.execute(statement, parameters).affectedRows)
            total += changed
            if changed < AdminSQL.chunkSize { return total }
        }
    }

    /// Jobs, newest first.
    /// Jobs of these kinds, newest first (created, then id), at most `filter.limit` in all.
    public func list(kinds: [JobKind], _ filter: JobFilter) throws -> [JobSummary] {
        let jobs = try kinds.flatMap { try list(kind: $0, filter) }
        guard kinds.count > 1 else { return jobs }
        return Array(jobs.sorted { ($0.createdAt ?? 0, $0.id) > ($1.createdAt ?? 0, $1.id) }.prefix(filter.limit))
    }

    public func list(kind: JobKind, _ filter: JobFilter) throws -> [JobSummary] {
        let sql = AdminSQL(kind: kind)
        let parameters: [any SQLEncodable] = [
            kind.rawValue, filter.status, filter.status, filter.companyID, filter.companyID, filter.id, filter.id,
            filter.createdFrom, filter.createdFrom, filter.createdBefore, filter.createdBefore, filter.limit,
        ]
        return try connection.query(sql.list, parameters).map { row in
            JobSummary(
                kind: kind,
                id: try row.decode("id"),
                companyID: try row.decode("company_id"),
                template: try row.decode("template"),
                status: try row.decode("status"),
                reason: try row.decodeIfPresent("reason"),
                total: try row.decode("total_items"),
                processed: try row.decode("processed_items"),
                failed: try row.decode("failed_items"),
                createdAt: Double(sqlValue: row["created"]),
                startedAt: Double(sqlValue: row["started"]),
                lastActivityAt: Double(sqlValue: row["active"]),
                now: Double(sqlValue: row["now"]) ?? 0,
                outage: try row.decodeIfPresent("outage"),
                outageSince: Double(sqlValue: row["outage_since"]),
                outageIsPause: try row.decodeIfPresent("outage_paused", as: Bool.self) ?? false,
                behindJob: try row.decodeIfPresent("behind")
            )
        }
    }

    /// One job's line, or nil when there is no such job.
    public func summary(kind: JobKind, id: UInt64) throws -> JobSummary? {
        try list(kind: kind, JobFilter(id: id, limit: 1)).first
    }
}

/// The operators' statements, for one kind of job.
struct AdminSQL: KindStatements {
    let kind: JobKind

    var createJob: String {
        "INSERT INTO \(jobs) (company_id, template, status, total_items, created_at, updated_at) "
            + "VALUES (?, ?, 'pending', ?, NOW(), NOW())"
    }

    /// Rows per INSERT of `create`.
    static let createRows = 1000

    func createItems(count: Int) -> String {
        let (first, second) = tables.targetColumns
        let values = Array(repeating: "(?, ?, ?, ?, NOW(), NOW())", count: count).joined(separator: ", ")
        return "INSERT INTO \(items) (\(fk), \(first), \(second), data, created_at, updated_at) VALUES \(values)"
    }

    var lockJob: String { "SELECT status FROM \(jobs) WHERE id = ? FOR UPDATE" }

    static let chunkSize = JobSQL.chunkSize

    var jobStatus: String { "SELECT status FROM \(jobs) WHERE id = ?" }

    var cancelPendingItems: String {
        """
        UPDATE \(items) SET status = 'cancelled', reason = ?, processed_at = NOW(),
          next_attempt_at = NULL, updated_at = NOW()
        WHERE \(fk) = ? AND status = 'pending' ORDER BY id LIMIT \(Self.chunkSize)
        """
    }

    /// The job is cancelled but `completed_at` stays empty: the next tick ends items still in
    /// flight and then closes the job.
    var cancelJob: String { "UPDATE \(jobs) SET status = 'cancelled', reason = ?, updated_at = NOW() WHERE id = ?" }

    /// The counters from the items. Parameters: job id.
    var recount: String { "UPDATE \(jobs) j SET \(tables.recountedCounters) WHERE j.id = ?" }

    var retryFailed: String {
        """
        UPDATE \(items) SET status = 'pending', reason = NULL, next_attempt_at = NULL, processed_at = NULL,
          in_doubt = 0, updated_at = NOW()
        WHERE \(fk) = ? AND status = 'failed' ORDER BY id LIMIT \(Self.chunkSize)
        """
    }

    func retrySomeFailed(count: Int) -> String {
        """
        UPDATE \(items) SET status = 'pending', reason = NULL, next_attempt_at = NULL, processed_at = NULL,
          in_doubt = 0, updated_at = NOW()
        WHERE \(fk) = ? AND status = 'failed' AND id IN (\(list(count)))
        """
    }

    var reopenJob: String {
        """
        UPDATE \(jobs) j SET j.status = 'processing', j.reason = NULL, j.completed_at = NULL, j.updated_at = NOW(),
          \(tables.recountedCounters)
        WHERE j.id = ?
        """
    }

    /// Jobs, newest first, with what holds each unfinished one up. The job's times have whole
    /// seconds: an outage met in the second of its last progress does not count (progress wins);
    /// a pause the server asked for counts however recent the progress.
    /// Parameters: kind, then each filter twice (status, company, id, created from, created before), limit.
    var list: String {
        """
        SELECT j.id, j.company_id, j.template, j.status, j.reason, j.total_items, j.processed_items,
               j.failed_items, UNIX_TIMESTAMP(j.created_at) AS created, UNIX_TIMESTAMP(j.started_at) AS started,
               UNIX_TIMESTAMP(COALESCE(j.last_processed_at, j.started_at, j.created_at)) AS active,
               UNIX_TIMESTAMP(NOW(6)) AS now,
               IF(j.status IN \(unfinished) AND o.last_seen >= NOW(6) - INTERVAL 3 MINUTE
                    AND (o.paused = 1 OR FLOOR(UNIX_TIMESTAMP(o.last_seen))
                      > UNIX_TIMESTAMP(COALESCE(j.last_processed_at, j.created_at))),
                  o.reason, NULL) AS outage,
               UNIX_TIMESTAMP(o.since) AS outage_since, o.paused AS outage_paused,
               IF(j.status = 'pending',
                  (SELECT MIN(b.id) FROM \(jobs) b
                   WHERE b.company_id = j.company_id AND b.id < j.id AND b.status IN \(unfinished)),
                  NULL) AS behind
        FROM \(jobs) j LEFT JOIN fanout_outages o ON o.kind = ?
        WHERE (? IS NULL OR j.status = ?) AND (? IS NULL OR j.company_id = ?) AND (? IS NULL OR j.id = ?)
          AND (? IS NULL OR j.created_at >= FROM_UNIXTIME(?)) AND (? IS NULL OR j.created_at < FROM_UNIXTIME(?))
        ORDER BY j.id DESC LIMIT ?
        """
    }
}

extension JobAdmin {
    /// An email job and one of its items (the given one, else its first), as a tick would claim
    /// them: for `fanout preview` and `fanout test-send`.
    public func emailItem(job id: UInt64, item itemID: UInt64?) throws -> (JobRecord, WorkItem) {
        guard let row = try connection.queryFirst(PreviewSQL.job, [id]) else {
            throw JobAdminError(description: "no email job \(id)")
        }
        let job = JobRecord(
            kind: .email, id: id, companyID: try row.decode("company_id"), template: try row.decode("template"),
            status: JobStatus(rawValue: try row.decode("status", as: String.self)) ?? .pending,
            mailType: try row.decodeIfPresent("mail_type"), installationID: try row.decodeIfPresent("installation"))
        let itemRow = try connection.queryFirst(
            itemID == nil ? PreviewSQL.firstItem : PreviewSQL.item, itemID == nil ? [id] : [id, itemID])
        guard let itemRow else {
            throw JobAdminError(
                description: itemID.map { "email job \(id) has no item \($0)" } ?? "email job \(id) has no items")
        }
        var item = WorkItem(
            id: try itemRow.decode("id"), jobID: id, email: try itemRow.decodeIfPresent("email"),
            name: try itemRow.decodeIfPresent("name"), data: try itemRow.decodeIfPresent("data"))
        item.suppression = try SuppressionSQL.reason(in: itemRow)
        return (job, item)
    }
}

enum PreviewSQL {
    private static let tables = JobTables(kind: .email)
    static let job = """
        SELECT company_id, template, status, mail_type, \(JobTables.installationID) AS installation
        FROM \(tables.jobs) WHERE id = ?
        """
    private static let columns = """
        SELECT i.id, i.email, i.name, i.data, \(SuppressionSQL.columns)
        FROM \(tables.items) i JOIN \(tables.jobs) j ON j.id = i.\(tables.jobColumn)
        LEFT JOIN \(SuppressionSQL.ofItem(company: "j.company_id", mailType: "j.mail_type"))
        """
    static let firstItem = columns + " WHERE i.\(tables.jobColumn) = ? ORDER BY i.id LIMIT 1"
    static let item = columns + " WHERE i.\(tables.jobColumn) = ? AND i.id = ?"
}
