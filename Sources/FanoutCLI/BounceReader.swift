import Curl
import FanoutDelivery
import FanoutSettings
import FanoutStore
import MariaDB

/// Reads the bounce mailbox's new messages and records what they report: `fanout bounces` once,
/// `fanout work` every BOUNCE_IMAP_EVERY. Where reading got to is kept in the database
/// (UIDVALIDITY and last UID, never moved back), and recording a report twice changes nothing,
/// so any mix of the two on any hosts records each report once.
struct BounceReader {
    let url: String
    let username: String
    let password: String
    let caFile: String?
    /// How often `fanout work` reads the mailbox.
    let every: Duration

    /// What one reading found.
    struct Summary {
        var read = 0
        var hard = 0
        var complaints = 0
        var soft = 0
        var other = 0
        /// Messages left for the next reading (a reading that stopped at its limit).
        var more = false

        var line: String {
            "Read \(read) new message\(read == 1 ? "" : "s"): \(hard) hard bounce\(hard == 1 ? "" : "s") "
                + "(items bounced, addresses suppressed), \(complaints) complaint\(complaints == 1 ? "" : "s") "
                + "(suppressed), \(soft) soft (nothing done), \(other) not about Fanout's mail (left alone)."
        }
    }

    /// The mailbox the settings name; nil when BOUNCE_IMAP_URL is not set.
    init?(settings: Settings) throws {
        guard let url = settings["BOUNCE_IMAP_URL"], !url.isEmpty else { return nil }
        self.url = url
        username = try settings.required("BOUNCE_IMAP_USERNAME", "the bounce mailbox's user")
        password = settings["BOUNCE_IMAP_PASSWORD"] ?? ""
        caFile = settings["BOUNCE_IMAP_CA_FILE"]
        let text = settings["BOUNCE_IMAP_EVERY"] ?? "5m"
        guard let every = DurationArgument(argument: text)?.duration, every > .zero else {
            throw ConfigurationError(description: "BOUNCE_IMAP_EVERY \"\(text)\" is not a duration such as 5m or 30s")
        }
        self.every = every
    }

    /// Reads what is new (at most `limit` messages) and records it through `connection`, calling
    /// `progress` after each message.
    func readNew(_ connection: Connection, limit: Int = .max, progress: () -> Void = {}) throws -> Summary {
        let mailbox = try IMAPMailbox(
            url: url, username: username, password: password, tls: TLSOptions(verifyPeer: true, caFile: caFile))
        let bounces = Bounces(connection: connection)
        let ours = try bounces.installationID()
        let status = try mailbox.status()
        let key = mailbox.server + mailbox.mailbox
        let all = try mailbox.uids(from: try bounces.lastUID(mailbox: key, uidValidity: status.uidValidity) + 1)
        let uids = all.prefix(limit)
        var summary = Summary(read: uids.count, more: all.count > uids.count)
        for uid in uids {
            let bytes = try mailbox.fetch(uid: uid)
            if let report = BounceReport.parse(bytes), report.installationID == nil || report.installationID == ours {
                switch report.kind {
                case .hard:
                    let ours = try bounces.record(
                        jobID: report.jobID, itemID: report.itemID, suppression: .hardBounce,
                        reason: "bounced: \(report.status) \(report.text)", source: "bounce (uid \(uid))")
                    if ours { summary.hard += 1 } else { summary.other += 1 }
                case .complaint:
                    let ours = try bounces.record(
                        jobID: report.jobID, itemID: report.itemID, suppression: .complaint,
                        reason: "delivered, then reported as spam: \(report.text)", source: "complaint (uid \(uid))")
                    if ours { summary.complaints += 1 } else { summary.other += 1 }
                case .soft:
                    summary.soft += 1
                }
            } else {
                summary.other += 1
            }
            try bounces.saveLastUID(uid, mailbox: key, uidValidity: status.uidValidity)
            progress()
        }
        return summary
    }
}
