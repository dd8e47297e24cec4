#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// What one tick did, for the summary log line and the record of ticks.
public struct TickSummary: Sendable, Hashable {
    public var kind: JobKind
    public var startedAt: Date
    public var companies = 0
    public var jobsAdvanced = 0
    public var jobsCompleted = 0
    public var jobsFailed = 0
    public var jobsCancelled = 0
    public var delivered = 0
    public var failed = 0
    public var retrying = 0
    /// Email items not sent because their recipient is suppressed.
    public var suppressed = 0
    public var inDoubt = 0
    /// Companies skipped because another tick held their lease.
    public var busy = 0
    /// Companies whose job did not move (all its items wait for a retry, say).
    public var stalled = 0
    /// The lease was taken from this tick mid-batch.
    public var leaseLost = false
    /// Set when the delivery server could not be used: the tick ends with exit 69.
    public var unavailable: String?
    /// Set when the server asked to wait (throttle, quota): "paused by the server until 14:05 (…)".
    public var paused: String?

    public init(kind: JobKind, startedAt: Date) {
        self.kind = kind
        self.startedAt = startedAt
    }

    /// Whether the tick found anything to do.
    public var isIdle: Bool { companies == 0 }

    /// Whether anything moved: an item got an outcome, or a job ended.
    public var movedAnything: Bool {
        delivered + failed + retrying + suppressed + jobsCompleted + jobsFailed + jobsCancelled > 0
    }
}
