#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Decides whether a runnable job has been inactive for too long.
///
/// Only the time Fanout was running counts: the gaps between ticks longer than `gapTolerance`
/// (cron stopped, the host was down) are not held against the job. A job waiting behind another
/// job of its company is never asked about (only each company's oldest runnable job is).
public struct InactivityRule: Sendable {
    public var inactiveAfter: Duration

    public init(inactiveAfter: Duration) {
        self.inactiveAfter = inactiveAfter
    }

    /// A gap between ticks longer than this means Fanout was not running: a third of the limit,
    /// at most five minutes (cron runs every minute).
    public var gapTolerance: Duration {
        min(.seconds(300), inactiveAfter / 3)
    }

    /// Whether `now - since` holds a long enough stretch of running time without progress.
    /// - Parameter tickStarts: start times of this kind's ticks since `since`, any order.
    public func isInactive(since: Date, now: Date, tickStarts: [Date]) -> Bool {
        let limit = inactiveAfter.seconds
        guard now.timeIntervalSince(since) > limit else { return false }
        let tolerance = gapTolerance.seconds
        var running = 0.0
        var previous = since
        for start in (tickStarts + [now]).filter({ $0 > since }).sorted() {
            let gap = start.timeIntervalSince(previous)
            if gap <= tolerance { running += gap }
            previous = start
        }
        return running > limit
    }
}

extension Duration {
    /// The duration in seconds, as a Double.
    public var seconds: Double {
        let (whole, fraction) = components
        return Double(whole) + Double(fraction) / 1e18
    }
}
