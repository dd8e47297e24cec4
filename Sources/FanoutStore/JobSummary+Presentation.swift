import FanoutCore
import Foundation

extension JobSummary {
    /// What the unfinished job waits for, in words: "waiting: SMTP server mail:587 unavailable since
    /// 12:03" (`short`: the outage's first words only), "waiting behind job 41".
    public func waiting(short: Bool = false) -> String? {
        // Behind an earlier job it waits whatever the server does.
        if let behindJob { return "waiting behind job \(behindJob)" }
        guard var outage else { return nil }
        // "paused by the server until 14:05 (421 4.7.28 …)" says itself when it ends.
        if outageIsPause {
            return short ? String(outage.prefix { $0 != "(" }).trimming(where: \.isWhitespace) : outage
        }
        if short, let end = outage.range(of: " unavailable") { outage = String(outage[..<end.upperBound]) }
        let since = outageSince.map { " since \(LocalTime.hoursMinutes($0))" } ?? ""
        return "waiting: \(outage)\(since)"
    }

    /// The job's fields as `fanout jobs --format json` and `/api/jobs` name them, ready for
    /// `JSONSerialization` (NSNull for null).
    public var fields: [String: Any] {
        let fields: [String: Any?] = [
            "kind": kind.rawValue, "id": id, "company_id": companyID, "template": template, "status": status,
            "total_items": total, "processed_items": processed, "failed_items": failed, "reason": reason,
            "created_at": createdAt, "last_activity_at": lastActivityAt, "waiting": waiting(),
        ]
        return fields.mapValues { $0 ?? NSNull() }
    }
}
