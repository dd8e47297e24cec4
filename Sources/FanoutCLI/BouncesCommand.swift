import ArgumentParser
import Curl
import FanoutDelivery
import FanoutStore

struct BouncesCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bounces",
        abstract: "Read the bounce mailbox: hard bounces fail their items and suppress the address.",
        discussion: """
            Reads the new messages of BOUNCE_IMAP_URL (imap://host:port/INBOX or imaps://…) as \
            BOUNCE_IMAP_USERNAME / BOUNCE_IMAP_PASSWORD, through libcurl. A delivery status \
            notification (RFC 3464, or an older MTA's plain-text bounce) about a message Fanout \
            sent (found by its Message-ID) that says the address does not exist turns that sent item \
            bounced ("bounced: 5.1.1 …", counted as failed) and suppresses the address for its \
            company (hard_bounce); a complaint (an ARF feedback report) suppresses it as a \
            complaint; a delay or a full mailbox changes nothing; auto-replies and other mail are \
            left alone. Each message is read once (the mailbox's UIDVALIDITY and last UID are \
            kept in the database); run it from cron every few minutes. BOUNCE_IMAP_CA_FILE trusts \
            a private CA for imaps.
            """
    )

    @OptionGroup var settings: SettingsOptions

    func run() throws {
        let loaded = try settings.load()
        let url = try loaded.required("BOUNCE_IMAP_URL", "the bounce mailbox, imap://host:port/INBOX or imaps://…")
        let user = try loaded.required("BOUNCE_IMAP_USERNAME", "the bounce mailbox's user")
        let mailbox = try IMAPMailbox(
            url: url, username: user, password: loaded["BOUNCE_IMAP_PASSWORD"] ?? "",
            tls: TLSOptions(verifyPeer: true, caFile: loaded["BOUNCE_IMAP_CA_FILE"]))
        let connection = try openDatabase(settings)
        defer { connection.close() }
        let bounces = Bounces(connection: connection)
        let ours = try bounces.installationID()
        let status = try mailbox.status()
        let key = mailbox.server + mailbox.mailbox
        let uids = try mailbox.uids(from: try bounces.lastUID(mailbox: key, uidValidity: status.uidValidity) + 1)
        var hard = 0, complaints = 0, soft = 0, other = 0
        for uid in uids {
            let bytes = try mailbox.fetch(uid: uid)
            if let report = BounceReport.parse(bytes), report.installationID == nil || report.installationID == ours {
                let recorded: String?
                switch report.kind {
                case .hard:
                    recorded = try bounces.record(
                        jobID: report.jobID, itemID: report.itemID, suppression: .hardBounce,
                        reason: "bounced: \(report.status) \(report.text)", source: "bounce (uid \(uid))")
                    if recorded != nil { hard += 1 }
                case .complaint:
                    recorded = try bounces.record(
                        jobID: report.jobID, itemID: report.itemID, suppression: .complaint,
                        reason: "delivered, then reported as spam: \(report.text)", source: "complaint (uid \(uid))")
                    if recorded != nil { complaints += 1 }
                case .soft:
                    recorded = ""
                    soft += 1
                }
                if recorded == nil { other += 1 }
            } else {
                other += 1
            }
            try bounces.saveLastUID(uid, mailbox: key, uidValidity: status.uidValidity)
        }
        print(
            "Read \(uids.count) new message\(uids.count == 1 ? "" : "s"): \(hard) hard bounce\(hard == 1 ? "" : "s") "
                + "(items failed, addresses suppressed), \(complaints) complaint\(complaints == 1 ? "" : "s") "
                + "(suppressed), \(soft) soft (nothing done), \(other) not about Fanout's mail (left alone).")
    }
}
