import FanoutCore
import MariaDB

/// Why an address is suppressed: unsubscribe and complaint hold back marketing mail, hard bounce
/// and manual every mail.
public enum SuppressionReason: String, Sendable, CaseIterable {
    case unsubscribe, complaint
    case hardBounce = "hard_bounce"
    case manual
}

/// One suppressed address of a company.
public struct Suppression: Sendable {
    public var companyID: UInt64
    public var email: String
    public var reason: String
    public var source: String?
    public var createdAt: Double?
    public var expiresAt: Double?
}

/// `fanout_suppressions`: the addresses a company must not mail (compared in lower case).
public struct Suppressions {
    private let connection: Connection

    public init(connection: Connection) {
        self.connection = connection
    }

    /// The address as it is kept and compared: trimmed, lower case.
    public static func normalised(_ email: String) -> String {
        email.trimming(where: \.isWhitespace).lowercased()
    }

    /// Suppresses an address (or changes why); returns whether it was new.
    @discardableResult
    public func add(
        companyID: UInt64, email: String, reason: SuppressionReason, source: String?, expiresInDays: Int? = nil
    ) throws -> Bool {
        let result = try connection.execute(
            SuppressionSQL.add,
            [companyID, Self.normalised(email), reason.rawValue, source, expiresInDays, expiresInDays])
        return result.affectedRows == 1
    }

    /// Suppresses many addresses (manual imports), a thousand a statement; returns how many of
    /// the company's addresses are new.
    @discardableResult
    public func add(companyID: UInt64, emails: [String], reason: SuppressionReason, source: String?) throws -> Int {
        let before = try count(companyID: companyID)
        for start in stride(from: 0, to: emails.count, by: 1000) {
            let chunk = emails[start..<min(start + 1000, emails.count)]
            var parameters: [any SQLEncodable] = []
            parameters.reserveCapacity(chunk.count * 4)
            for email in chunk {
                parameters += [companyID, Self.normalised(email), reason.rawValue, source] as [any SQLEncodable]
            }
            try connection.execute(SuppressionSQL.addRows(chunk.count), parameters)
        }
        return try count(companyID: companyID) - before
    }

    private func count(companyID: UInt64) throws -> Int {
        try connection.queryFirst(SuppressionSQL.count, [companyID])?.decode("n") ?? 0
    }

    /// Lifts a suppression; returns whether there was one.
    @discardableResult
    public func remove(companyID: UInt64, email: String) throws -> Bool {
        try connection.execute(SuppressionSQL.remove, [companyID, Self.normalised(email)]).affectedRows > 0
    }

    public func list(companyID: UInt64) throws -> [Suppression] {
        try connection.query(SuppressionSQL.list, [companyID]).map { row in
            Suppression(
                companyID: companyID, email: try row.decode("email"), reason: try row.decode("reason"),
                source: try row.decodeIfPresent("source"), createdAt: Double(sqlValue: row["created"]),
                expiresAt: Double(sqlValue: row["expires"]))
        }
    }

    /// The recipient, company and job of an email item (what an unsubscribe token names).
    public func recipient(ofItem itemID: UInt64) throws -> (companyID: UInt64, email: String, jobID: UInt64)? {
        guard let row = try connection.queryFirst(SuppressionSQL.itemRecipient, [itemID]) else { return nil }
        return (try row.decode("company_id"), try row.decode("email"), try row.decode("job_id"))
    }
}

enum SuppressionSQL {
    /// Parameters: company, email, reason, source, days until it expires twice (NULL: never).
    static let add = """
        INSERT INTO fanout_suppressions (company_id, email, reason, source, created_at, expires_at)
        VALUES (?, ?, ?, ?, NOW(6), IF(? IS NULL, NULL, NOW(6) + INTERVAL ? DAY))
        \(keepingTheStronger)
        """
    /// `count` rows of company, email, reason, source, for good.
    static func addRows(_ count: Int) -> String {
        """
        INSERT INTO fanout_suppressions (company_id, email, reason, source, created_at, expires_at)
        VALUES \(Array(repeating: "(?, ?, ?, ?, NOW(6), NULL)", count: count).joined(separator: ", "))
        \(keepingTheStronger)
        """
    }
    private static let keepingTheStronger = """
        ON DUPLICATE KEY UPDATE
          source = IF(\(weakening), source, VALUES(source)),
          expires_at = IF(\(weakening), expires_at, VALUES(expires_at)),
          reason = IF(\(weakening), reason, VALUES(reason))
        """
    static let count = "SELECT COUNT(*) AS n FROM fanout_suppressions WHERE company_id = ?"
    /// A suppression of every mail (hard bounce, manual) is never turned into one of marketing
    /// mail only by a later unsubscribe or complaint. (Assignments run left to right: `reason`
    /// is changed last, so the conditions before it read the old one.)
    private static let weakening =
        "reason IN \(allMail) AND VALUES(reason) IN ('unsubscribe', 'complaint')"
    static let remove = "DELETE FROM fanout_suppressions WHERE company_id = ? AND email = ?"
    static let list = """
        SELECT email, reason, source, UNIX_TIMESTAMP(created_at) AS created, UNIX_TIMESTAMP(expires_at) AS expires
        FROM fanout_suppressions WHERE company_id = ? ORDER BY email
        """
    static var itemRecipient: String {
        let tables = JobTables(kind: .email)
        return """
            SELECT j.company_id, i.email, i.\(tables.jobColumn) AS job_id FROM \(tables.items) i
            JOIN \(tables.jobs) j ON j.id = i.\(tables.jobColumn) WHERE i.id = ?
            """
    }

    /// Whether suppression row `s` holds back mail of this mail type (a SQL condition):
    /// unsubscribe and complaint hold back marketing mail, hard bounce and manual every mail.
    static func holds(mailType: String) -> String {
        "(s.expires_at IS NULL OR s.expires_at > NOW(6)) AND (s.reason IN \(allMail) OR \(mailType) = 'marketing')"
    }

    /// The suppression row `s` that holds back email item `i` (a join condition, after
    /// `JOIN` or `LEFT JOIN`): the company's, for the item's address, holding for the mail type.
    static func ofItem(company: String, mailType: String) -> String {
        """
        fanout_suppressions s ON s.company_id = \(company) AND s.email = LOWER(TRIM(i.email))
          AND \(holds(mailType: mailType))
        """
    }

    /// Why `s` holds an item back, as `reason(in:)` reads it.
    static let columns = """
        s.reason AS suppressed, s.source AS suppressed_source, DATE_FORMAT(s.created_at, '%Y-%m-%d') AS suppressed_since
        """

    /// "unsubscribe (one-click) since 2026-12-06": why an item's recipient is held back, from the
    /// `columns` of a row; nil when none holds.
    static func reason(in row: Row) throws -> String? {
        guard let why = try row.decodeIfPresent("suppressed", as: String.self) else { return nil }
        let source = try row.decodeIfPresent("suppressed_source", as: String.self).map { " (\($0))" } ?? ""
        let since = try row.decodeIfPresent("suppressed_since", as: String.self).map { " since \($0)" } ?? ""
        return "\(why)\(source)\(since)"
    }

    /// The reasons that hold back every mail.
    static let allMail = "('hard_bounce', 'manual')"
}
