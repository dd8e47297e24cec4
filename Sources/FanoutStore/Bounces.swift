import FanoutCore
import MariaDB

/// What `fanout bounces` writes: a hard bounce fails its item ("bounced: …") and suppresses the
/// address (hard_bounce), a complaint suppresses it (complaint) and notes it on the item; and how
/// far each bounce mailbox was read.
public struct Bounces {
    private let connection: Connection

    public init(connection: Connection) {
        self.connection = connection
    }

    /// This database's installation id (reports about another installation's mail are not ours).
    public func installationID() throws -> String? {
        try connection.queryFirst(BounceSQL.installation)?.decodeIfPresent("id")
    }

    /// The last UID read of a mailbox, when its UIDVALIDITY is the one recorded.
    public func lastUID(mailbox: String, uidValidity: UInt64) throws -> UInt64 {
        guard let row = try connection.queryFirst(BounceSQL.position, [mailbox]),
            try row.decode("uid_validity", as: UInt64.self) == uidValidity
        else { return 0 }
        return try row.decode("last_uid")
    }

    public func saveLastUID(_ uid: UInt64, mailbox: String, uidValidity: UInt64) throws {
        try connection.execute(BounceSQL.savePosition, [mailbox, uidValidity, uid])
    }

    /// Records a report about item `itemID` of email job `jobID`; returns the address it was about,
    /// nil when there is no such item.
    @discardableResult
    public func record(
        jobID: UInt64, itemID: UInt64, hard: Bool, complaint: Bool, reason: String, source: String
    ) throws -> String? {
        guard let row = try connection.queryFirst(BounceSQL.item, [itemID, jobID]) else { return nil }
        let email: String = try row.decode("email")
        let company: UInt64 = try row.decode("company_id")
        try connection.transaction {
            if hard {
                try connection.execute(BounceSQL.bounced, [reason, itemID, jobID])
                try connection.execute(BounceSQL.recount, [jobID])
            } else if complaint {
                try connection.execute(BounceSQL.note, [reason, itemID, jobID])
            }
            if hard || complaint {
                try Suppressions(connection: connection).add(
                    companyID: company, email: email, reason: hard ? .hardBounce : .complaint, source: source)
            }
        }
        return email
    }
}

enum BounceSQL {
    static let installation = "SELECT id FROM fanout_installation LIMIT 1"
    static let position = "SELECT uid_validity, last_uid FROM fanout_bounce_mailboxes WHERE mailbox = ?"
    static let savePosition = """
        INSERT INTO fanout_bounce_mailboxes (mailbox, uid_validity, last_uid) VALUES (?, ?, ?)
        ON DUPLICATE KEY UPDATE uid_validity = VALUES(uid_validity), last_uid = VALUES(last_uid)
        """
    static let item = """
        SELECT i.email, j.company_id FROM bulk_email_job_items i JOIN bulk_email_jobs j ON j.id = i.bulk_email_job_id
        WHERE i.id = ? AND i.bulk_email_job_id = ?
        """
    /// A delivered item that bounced later fails with the DSN's words (read again: unchanged).
    static let bounced = """
        UPDATE bulk_email_job_items SET status = 'failed', reason = ?, updated_at = NOW()
        WHERE id = ? AND bulk_email_job_id = ? AND status = 'sent'
        """
    static let note = """
        UPDATE bulk_email_job_items SET reason = ?, updated_at = NOW()
        WHERE id = ? AND bulk_email_job_id = ? AND status = 'sent'
        """
    static var recount: String {
        "UPDATE bulk_email_jobs j SET \(JobTables(kind: .email).recountedCounters) WHERE j.id = ?"
    }
}
