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

    public init(
        kind: JobKind, jobID: UInt64, companyID: UInt64, template: String, status: String, reason: String?,
        countsByStatus: [(status: String, count: Int)], inDoubt: Int, topFailures: [(reason: String, count: Int)],
        firstProcessedAt: Double?, lastProcessedAt: Double?, perMinute: [(minute: Double, count: Int)]
    ) {
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
        let done = countsByStatus.filter { $0.status != "pending" && $0.status != "processing" }.reduce(0) {
            $0 + $1.count
        }
        return Double(done) / duration
    }
}
