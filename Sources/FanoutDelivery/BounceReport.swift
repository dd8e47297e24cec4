import Foundation

/// What a message in the bounce mailbox says about one message Fanout sent: a delivery status
/// notification (RFC 3464, and the plain-text bounces older MTAs send), a complaint (an ARF
/// feedback report, RFC 5965), or nothing of ours (an auto-reply, a person's mail).
public struct BounceReport: Sendable, Equatable {
    public enum Kind: Sendable, Equatable {
        /// Refused for good: the address does not exist (5.x.x, but a full mailbox).
        case hard
        /// Delayed, or refused for a reason that passes (4.x.x, 5.2.2 mailbox full).
        case soft
        /// The recipient reported the message as spam.
        case complaint
    }

    public var kind: Kind
    /// The original message's job and item (from its Message-ID), and its installation id.
    public var jobID: UInt64
    public var itemID: UInt64
    public var installationID: String?
    /// The enhanced status (`5.1.1`) or the feedback type (`abuse`).
    public var status: String
    /// The server's words, one line.
    public var text: String

    /// Reads a message; nil when it is not a bounce or complaint about a message of ours.
    public static func parse(_ bytes: [UInt8]) -> BounceReport? {
        let message = String(decoding: bytes, as: UTF8.self).replacingOccurrences(of: "\r\n", with: "\n")
        let split = message.range(of: "\n\n")
        let head = split.map { String(message[..<$0.lowerBound]) } ?? message
        let body = split.map { String(message[$0.upperBound...]) } ?? ""
        let headers = unfolded(head)
        let contentType = headers["content-type"]?.lowercased() ?? ""
        // Our Message-ID, where the report quotes the original (never the report's own headers:
        // an auto-reply names it in In-Reply-To).
        guard let original = body.firstMatch(of: /fanout\.email\.(\d+)\.(\d+)(?:\.([0-9a-f]{16}))?@/),
            let jobID = UInt64(original.1), let itemID = UInt64(original.2)
        else { return nil }
        let installation = original.3.map(String.init)
        if contentType.contains("report-type=feedback-report")
            || contentType.contains("report-type=\"feedback-report\"")
        {
            let type = unfolded(body)["feedback-type"] ?? "abuse"
            return BounceReport(
                kind: .complaint, jobID: jobID, itemID: itemID, installationID: installation, status: type,
                text:
                    "complaint (\(type)) from \(headers["from"].map { excerpt($0, limit: 80) } ?? "a mailbox provider")"
            )
        }
        let isReport =
            contentType.contains("report-type=delivery-status")
            || contentType.contains("report-type=\"delivery-status\"")
        let failedRecipients = headers["x-failed-recipients"]
        let sender = (headers["from"] ?? "").lowercased()
        let fromDaemon =
            sender.contains("mailer-daemon") || sender.contains("postmaster")
            || sender.contains("mail delivery")
        guard isReport || failedRecipients != nil || fromDaemon else { return nil }
        // The per-recipient fields of a DSN, or the plain text of an older bounce.
        let report = body.components(separatedBy: "------ This is a copy of the message")[0]
        let fields = unfolded(report)
        let action = fields["action"]?.lowercased()
        let statusField = fields["status"].flatMap { $0.firstMatch(of: /[245]\.\d{1,3}\.\d{1,3}/) }
        let status =
            statusField.map { String($0.0) }
            ?? report.firstMatch(of: /\b([45]\.\d{1,3}\.\d{1,3})\b/).map { String($0.1) }
            ?? report.firstMatch(of: /\b([45])\d\d\b/).map { "\($0.1).0.0" }
        guard let status else { return nil }
        let diagnostic = fields["diagnostic-code"].map { $0.split(separator: ";", maxSplits: 1).last }
            .flatMap { $0 }.map { String($0).trimmingCharacters(in: .whitespaces) }
        let line =
            diagnostic
            ?? report.split(separator: "\n").first { $0.contains(status) || $0.contains(" 5") }.map(String.init)
            ?? status
        let permanent = status.hasPrefix("5.") && status != "5.2.2" && action != "delayed"
        return BounceReport(
            kind: permanent ? .hard : .soft, jobID: jobID, itemID: itemID, installationID: installation,
            status: status, text: excerpt(line, limit: 200))
    }

    /// `Name: value` fields by lower-case name (the first of each), continuation lines joined: a
    /// message's header, or the per-recipient fields of a report's text.
    static func unfolded(_ head: String) -> [String: String] {
        var fields: [String: String] = [:]
        var last: String?
        for line in head.split(separator: "\n", omittingEmptySubsequences: false) {
            if let first = line.first, first == " " || first == "\t", let last {
                fields[last, default: ""] += " " + line.trimmingCharacters(in: .whitespaces)
                continue
            }
            guard let colon = line.firstIndex(of: ":") else {
                last = nil // a line that is no field ends the one before
                continue
            }
            let name = line[..<colon].lowercased()
            last = fields[name] == nil ? name : nil
            if fields[name] == nil {
                fields[name] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            }
        }
        return fields
    }
}
