import FanoutCore

/// One item row of a report, as read from the store: the item table's columns.
public struct ReportItem: Sendable {
    public var id: UInt64
    /// Email items.
    public var email: String?
    public var name: String?
    /// Wallet items.
    public var cardID: UInt64?
    public var platform: String?
    public var status: String
    public var attempts: Int
    public var inDoubt: Bool
    /// The SMTP reply code (`response_code`) or HTTP status (`http_status`) of the last attempt.
    public var code: Int?
    /// Unix seconds: when APNs said the device is gone (wallet), when the item reached its state.
    public var unregisteredAt: Double?
    public var processedAt: Double?
    public var reason: String?

    public init(
        id: UInt64, email: String? = nil, name: String? = nil, cardID: UInt64? = nil, platform: String? = nil,
        status: String, attempts: Int, inDoubt: Bool, code: Int?, unregisteredAt: Double? = nil, processedAt: Double?, reason: String?
    ) {
        self.id = id
        self.email = email
        self.name = name
        self.cardID = cardID
        self.platform = platform
        self.status = status
        self.attempts = attempts
        self.inDoubt = inDoubt
        self.code = code
        self.unregisteredAt = unregisteredAt
        self.processedAt = processedAt
        self.reason = reason
    }
}

/// A value of one report field, typed so each format writes it its own way.
public enum ReportValue: Sendable, Equatable {
    case text(String?)
    case number(Int64?)
    case flag(Bool)
    /// Unix seconds, written as ISO 8601 in UTC (`2026-12-03T17:09:37Z`).
    case time(Double?)
}

/// The fields of an item row, named as the item table names its columns, in the order every
/// format writes them (contract, "Reports").
public enum ReportColumns {
    public static func names(_ kind: JobKind) -> [String] {
        switch kind {
        case .email: ["id", "email", "name", "status", "attempts", "in_doubt", "response_code", "processed_at", "reason"]
        case .wallet: ["id", "card_id", "platform", "status", "attempts", "in_doubt", "http_status", "unregistered_at", "processed_at", "reason"]
        }
    }

    public static func values(_ item: ReportItem, kind: JobKind) -> [ReportValue] {
        let code = ReportValue.number(item.code.map(Int64.init))
        switch kind {
        case .email:
            return [.number(Int64(item.id)), .text(item.email), .text(item.name), .text(item.status), .number(Int64(item.attempts)),
                    .flag(item.inDoubt), code, .time(item.processedAt), .text(item.reason)]
        case .wallet:
            return [.number(Int64(item.id)), .number(item.cardID.map { Int64(bitPattern: $0) }), .text(item.platform), .text(item.status),
                    .number(Int64(item.attempts)), .flag(item.inDoubt), code, .time(item.unregisteredAt), .time(item.processedAt), .text(item.reason)]
        }
    }
}

/// What a report says before its rows: the job, counts, the commonest failures, timing.
public struct ReportSummary: Sendable {
    public var kind: JobKind
    public var jobID: UInt64
    public var companyID: UInt64
    public var template: String
    public var status: String
    public var reason: String?
    public var countsByStatus: [(status: String, count: Int)]
    public var inDoubt: Int
    public var topFailures: [(reason: String, count: Int)]
    /// Unix seconds of the first and last item that reached a state.
    public var firstProcessedAt: Double?
    public var lastProcessedAt: Double?
    /// Items that reached a state, per minute (Unix seconds of the minute, count).
    public var perMinute: [(minute: Double, count: Int)]

    public init(kind: JobKind, jobID: UInt64, companyID: UInt64, template: String, status: String, reason: String?, countsByStatus: [(status: String, count: Int)], inDoubt: Int, topFailures: [(reason: String, count: Int)], firstProcessedAt: Double?, lastProcessedAt: Double?, perMinute: [(minute: Double, count: Int)]) {
        self.kind = kind
        self.jobID = jobID
        self.companyID = companyID
        self.template = template
        self.status = status
        self.reason = reason
        self.countsByStatus = countsByStatus
        self.inDoubt = inDoubt
        self.topFailures = topFailures
        self.firstProcessedAt = firstProcessedAt
        self.lastProcessedAt = lastProcessedAt
        self.perMinute = perMinute
    }

    public var total: Int { countsByStatus.reduce(0) { $0 + $1.count } }

    /// Seconds from the first to the last item that reached a state.
    public var duration: Double? {
        guard let first = firstProcessedAt, let last = lastProcessedAt else { return nil }
        return last - first
    }

    /// Items per second over `duration`.
    public var throughput: Double? {
        guard let duration, duration > 0 else { return nil }
        let done = countsByStatus.filter { $0.status != "pending" && $0.status != "processing" }.reduce(0) { $0 + $1.count }
        return Double(done) / duration
    }
}
