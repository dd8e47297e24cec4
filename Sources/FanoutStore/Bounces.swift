import FanoutCore
import MariaDB

/// What `fanout bounces` writes: a hard bounce turns its sent item bounced ("bounced: …") and suppresses the
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

    /// Records a report about item `itemID` of email job `jobID`: a hard bounce makes the item bounced
    /// with `reason` and suppresses its address, a complaint notes `reason` on it and suppresses
    /// it as a complaint. Returns false when the job has no such item (nothing is written).
    @discardableResult
    public func record(
        jobID: UInt64, itemID: UInt64, suppression: SuppressionReason, reason: String, source: String
    ) throws -> Bool {
        let suppressions = Suppressions(connection: connection)
        guard let recipient = try suppressions.recipient(ofItem: itemID), recipient.jobID == jobID else { return false }
        try connection.transaction {
            if suppression == .hardBounce {
                try connection.execute(BounceSQL.bounced, [reason, itemID])
            } else {
                try connection.execute(BounceSQL.note, [reason, itemID])
            }
            try suppressions.add(
                companyID: recipient.companyID, email: recipient.email, reason: suppression, source: source)
        }
        return true
    }
}

enum BounceSQL {
    private static let tables = JobTables(kind: .email)
    private static let items = tables.items
    static let installation = "SELECT \(JobTables.installationID) AS id"
    static let position = "SELECT uid_validity, last_uid FROM fanout_bounce_mailboxes WHERE mailbox = ?"
    static let savePosition = """
        INSERT INTO fanout_bounce_mailboxes (mailbox, uid_validity, last_uid) VALUES (?, ?, ?)
        ON DUPLICATE KEY UPDATE
          last_uid = IF(uid_validity = VALUES(uid_validity), GREATEST(last_uid, VALUES(last_uid)), VALUES(last_uid)),
          uid_validity = VALUES(uid_validity)
        """
    /// A delivered item that bounced later becomes bounced with the DSN's words, and its job
    /// counts one more failure, in one statement (read again: the item is no longer sent, nothing
    /// changes). Parameters: reason, item id.
    static let bounced = """
        UPDATE \(items) i JOIN \(tables.jobs) j ON j.id = i.\(tables.jobColumn)
        SET i.status = 'bounced', i.reason = ?, i.updated_at = NOW(), j.failed_items = j.failed_items + 1
        WHERE i.id = ? AND i.status = 'sent'
        """
    static let note = "UPDATE \(items) SET reason = ?, updated_at = NOW() WHERE id = ? AND status = 'sent'"
}
