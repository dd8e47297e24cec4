/// The status of a job (the parent row).
public enum JobStatus: String, Sendable, CaseIterable, Codable {
    case pending, processing, completed, failed, cancelled

    /// Whether the tick may still advance a job in this status.
    public var isRunnable: Bool { self == .pending || self == .processing }
    public var isTerminal: Bool { !isRunnable }
}

/// The status of one item of a job.
public enum ItemStatus: String, Sendable, CaseIterable, Codable {
    case pending, processing, sent, completed, failed, cancelled
    /// Email: not sent, the recipient is suppressed (unsubscribed, complained, hard-bounced
    /// before); not a failure.
    case suppressed
    /// Email: sent, then a bounce report came back for it; counted as failed.
    case bounced

    public var isTerminal: Bool {
        switch self {
        case .pending, .processing: false
        case .sent, .completed, .failed, .cancelled, .suppressed, .bounced: true
        }
    }
}
