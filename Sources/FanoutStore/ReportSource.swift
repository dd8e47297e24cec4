import FanoutCore
import MariaDB

/// Reads a job's report from the database: a few summary queries, then the items streamed row
/// by row (unbuffered), so a job of any size takes constant memory.
public struct ReportSource {
    private let connection: Connection

    public init(connection: Connection) {
        self.connection = connection
    }

    public func summary(kind: JobKind, jobID: UInt64) throws -> ReportSummary {
        let sql = ReportSQL(kind: kind)
        guard let job = try connection.queryFirst(sql.job, [jobID]) else {
            throw JobAdminError(description: "no \(kind.rawValue) job \(jobID)")
        }
        var counts: [(String, Int)] = []
        var inDoubt = 0
        for row in try connection.query(sql.counts, [jobID]) {
            counts.append((try row.decode("status"), try row.decode("n")))
            inDoubt += try row.decode("doubt", as: Int.self)
        }
        let failures = try failureReasons(kind: kind, jobID: jobID, limit: 5).map { ($0.reason, $0.count) }
        let span = try connection.queryFirst(sql.span, [jobID])
        let perMinute = try connection.query(sql.perMinute, [jobID]).map {
            (Double(sqlValue: $0["minute"]) ?? 0, try $0.decode("n", as: Int.self))
        }
        return ReportSummary(
            kind: kind, jobID: jobID, companyID: try job.decode("company_id"), template: try job.decode("template"),
            status: try job.decode("status"), reason: try job.decodeIfPresent("reason"),
            countsByStatus: counts, inDoubt: inDoubt, topFailures: failures,
            firstProcessedAt: span.flatMap { Double(sqlValue: $0["first"]) },
            lastProcessedAt: span.flatMap { Double(sqlValue: $0["last"]) },
            perMinute: perMinute
        )
    }

    /// Hands every item to `body` in id order, as the rows arrive.
    public func forEachItem(kind: JobKind, jobID: UInt64, _ body: (ReportItem) throws -> Void) throws {
        let sql = ReportSQL(kind: kind)
        try connection.prepare(sql.itemRows).forEachRow([jobID]) { row in try body(try Self.item(row)) }
    }

    /// Which items a page shows: by status, by recipient (email: the address starts with it;
    /// wallet: the card id), after an id (keyset pagination), at most `limit`.
    public struct ItemQuery: Sendable {
        public var status: String?
        public var search: String?
        public var after: UInt64?
        public var limit: Int

        public init(status: String? = nil, search: String? = nil, after: UInt64? = nil, limit: Int = 100) {
            self.status = status
            self.search = search
            self.after = after
            self.limit = limit
        }
    }

    /// A page of items in id order, through the (job, status, id) index or the primary key.
    public func items(kind: JobKind, jobID: UInt64, _ query: ItemQuery) throws -> [ReportItem] {
        let sql = ReportSQL(kind: kind)
        var parameters: [any SQLEncodable] = [jobID, query.after ?? 0]
        let statement = sql.itemPage(status: query.status != nil, search: query.search != nil)
        if let status = query.status { parameters.append(status) }
        if let search = query.search {
            if kind == .email {
                // A prefix of the address: LIKE's own wildcards in it are matched as themselves.
                let escaped = search.replacing("\\", with: "\\\\").replacing("%", with: "\\%")
                    .replacing("_", with: "\\_")
                parameters.append(escaped + "%")
            } else {
                guard let card = UInt64(search) else { return [] }
                parameters.append(card)
            }
        }
        parameters.append(query.limit)
        return try connection.query(statement, parameters).map(Self.item)
    }

    /// Items per status, from the (job, status, id) index alone (a page's summary; the report's
    /// own counts also read each row for its in-doubt flag).
    public func statusCounts(kind: JobKind, jobID: UInt64) throws -> [(status: String, count: Int)] {
        try connection.query(ReportSQL(kind: kind).statusCounts, [jobID]).map {
            (try $0.decode("status", as: String.self), try $0.decode("n", as: Int.self))
        }
    }

    /// The failed items' reasons, most frequent first, with how many items each.
    public func failureReasons(kind: JobKind, jobID: UInt64, limit: Int) throws -> [(reason: String, count: Int)] {
        try connection.query(ReportSQL(kind: kind).failureReasons, [jobID, limit]).map {
            (try $0.decode("reason", as: String.self), try $0.decode("n", as: Int.self))
        }
    }

    private static func item(_ row: Row) throws -> ReportItem {
        ReportItem(
            id: try row.decode("id"),
            email: try row.decodeIfPresent("email"),
            name: try row.decodeIfPresent("name"),
            cardID: try row.decodeIfPresent("card_id"),
            platform: try row.decodeIfPresent("platform"),
            status: try row.decode("status"),
            attempts: try row.decode("attempts"),
            inDoubt: try row.decode("in_doubt", as: Bool.self),
            code: try row.decodeIfPresent("code"),
            unregisteredAt: Double(sqlValue: row["unregistered"]),
            processedAt: Double(sqlValue: row["processed"]),
            reason: try row.decodeIfPresent("reason")
        )
    }
}

struct ReportSQL: KindStatements {
    let kind: JobKind

    var job: String { "SELECT company_id, template, status, reason FROM \(jobs) WHERE id = ?" }
    var counts: String {
        """
        SELECT status, COUNT(*) AS n, SUM(in_doubt) AS doubt FROM \(items)
        WHERE \(fk) = ? GROUP BY status ORDER BY n DESC
        """
    }
    var span: String {
        """
        SELECT UNIX_TIMESTAMP(MIN(processed_at)) AS first, UNIX_TIMESTAMP(MAX(processed_at)) AS last
        FROM \(items) WHERE \(fk) = ?
        """
    }
    var perMinute: String {
        """
        SELECT UNIX_TIMESTAMP(processed_at) DIV 60 * 60 AS minute, COUNT(*) AS n FROM \(items)
        WHERE \(fk) = ? AND processed_at IS NOT NULL GROUP BY minute ORDER BY minute LIMIT 1440
        """
    }
    var statusCounts: String {
        "SELECT status, COUNT(*) AS n FROM \(items) WHERE \(fk) = ? GROUP BY status ORDER BY n DESC"
    }
    var failureReasons: String {
        """
        SELECT LEFT(reason, 300) AS reason, COUNT(*) AS n FROM \(items)
        WHERE \(fk) = ? AND status IN \(tables.failing) AND reason IS NOT NULL
        GROUP BY LEFT(reason, 300) ORDER BY n DESC LIMIT ?
        """
    }
    private var itemColumns: String {
        let columns =
            kind == .email
            ? "email, name, NULL AS card_id, NULL AS platform, \(tables.codeColumn) AS code, NULL AS unregistered"
            : "NULL AS email, NULL AS name, card_id, platform, \(tables.codeColumn) AS code, "
                + "UNIX_TIMESTAMP(unregistered_at) AS unregistered"
        return "id, \(columns), status, attempts, in_doubt, reason, UNIX_TIMESTAMP(processed_at) AS processed"
    }
    var itemRows: String { "SELECT \(itemColumns) FROM \(items) WHERE \(fk) = ? ORDER BY id" }
    /// Parameters: job, after id, then status and search when asked for, limit.
    func itemPage(status: Bool, search: Bool) -> String {
        var conditions = "\(fk) = ? AND id > ?"
        if status { conditions += " AND status = ?" }
        if search { conditions += kind == .email ? " AND email LIKE ?" : " AND card_id = ?" }
        return "SELECT \(itemColumns) FROM \(items) WHERE \(conditions) ORDER BY id LIMIT ?"
    }
}
