import Foundation
import MariaDB

/// A migrated test database with job rows inserted the way a host application does (plain
/// INSERTs, counters left at 0), and helpers to read back what the tick did.
public final class JobFixture: @unchecked Sendable {
    // Sendable: used by one test at a time; the connection is only touched from that test.
    public let database: TestDatabase
    public let db: Connection

    public init(database: TestDatabase, db: Connection) throws {
        self.database = database
        self.db = db
        let migrate = try runFanout(["migrate"], environment: database.environment)
        guard migrate.status == 0 else { throw TestServerError(message: "migrate failed: \(migrate.stderr)") }
    }

    /// Inserts an email job and `count` items `PREFIX-N@example.test` (N from 1), or the given
    /// recipients; returns the job id.
    @discardableResult
    public func emailJob(
        company: UInt64, template: String = "plain", count: Int = 0, prefix: String = "user",
        recipients: [(email: String, name: String?, data: String?)] = [], status: String = "pending"
    ) throws -> UInt64 {
        let job = try insertJob(.email, company: company, template: template, status: status)
        try insertItems(
            .email, job: job, columns: "email, name, data", count: count,
            generated: "CONCAT(?, '-', seq, '@example.test'), CONCAT('Person ', seq), JSON_OBJECT('code', seq)",
            generatedParameters: ["\(prefix)-c\(company)-j\(job)"],
            rows: recipients.map { [$0.email, $0.name, $0.data] }
        )
        return job
    }

    public struct Item: Sendable {
        public var id: UInt64
        public var email: String
        public var status: String
        public var reason: String?
        public var attempts: Int
        public var inDoubt: Bool
        public var code: Int?
    }

    public func items(job: UInt64) throws -> [Item] {
        try db.query(
            "SELECT id, email, status, reason, attempts, in_doubt, response_code "
                + "FROM bulk_email_job_items WHERE bulk_email_job_id = ? ORDER BY id",
            [job]
        ).map {
            Item(
                id: try $0.decode("id"), email: try $0.decode("email"), status: try $0.decode("status"),
                reason: try $0.decodeIfPresent("reason"), attempts: try $0.decode("attempts"),
                inDoubt: try $0.decode("in_doubt"), code: try $0.decodeIfPresent("response_code"))
        }
    }

    /// The tables of one kind of job, for the helpers both kinds share.
    struct Tables {
        let jobs: String, items: String, fk: String, delivered: String
        static let email = Tables(
            jobs: "bulk_email_jobs", items: "bulk_email_job_items", fk: "bulk_email_job_id", delivered: "sent")
        static let wallet = Tables(
            jobs: "bulk_wallet_api_jobs", items: "bulk_wallet_api_job_items", fk: "bulk_wallet_api_job_id",
            delivered: "completed")
    }

    func insertJob(_ tables: Tables, company: UInt64, template: String, status: String) throws -> UInt64 {
        try db.execute(
            "INSERT INTO \(tables.jobs) (company_id, template, status, created_at, updated_at) "
                + "VALUES (?, ?, ?, NOW(), NOW())",
            [company, template, status]
        ).lastInsertID
    }

    /// `count` items made by `generated` (a SELECT list over `seq`, 1 to count), then `rows`.
    func insertItems(
        _ tables: Tables, job: UInt64, columns: String, count: Int, generated: String,
        generatedParameters: [any SQLEncodable], rows: [[any SQLEncodable]]
    ) throws {
        let insert = "INSERT INTO \(tables.items) (\(tables.fk), \(columns), created_at, updated_at)"
        if count > 0 {
            try db.execute(
                "\(insert) SELECT ?, \(generated), NOW(), NOW() FROM seq_1_to_\(count)", [job] + generatedParameters)
        }
        for row in rows {
            let marks = Array(repeating: "?", count: row.count).joined(separator: ", ")
            try db.execute("\(insert) VALUES (?, \(marks), NOW(), NOW())", [job] + row)
        }
    }

    /// Every column of the job's row and of its items, as text: to see that nothing changed.
    func rows(_ tables: Tables, job: UInt64) throws -> [String] {
        try db.query("SELECT * FROM \(tables.jobs) WHERE id = ?", [job]).map { "\($0.values)" }
            + db.query("SELECT * FROM \(tables.items) WHERE \(tables.fk) = ? ORDER BY id", [job]).map { "\($0.values)" }
    }

    /// Pauses a sending tick (SIGSTOP), waits past `--stuck-after 2s`, runs `takeOver` ticks until
    /// the job completes, and resumes the paused one (SIGCONT): the resumed process must change no
    /// row. Returns the rows after the takeover, the rows after the resumed process ended, and
    /// its exit status.
    func stopTakeOverResume(
        _ tables: Tables, job: UInt64, paused: ChildProcess, takeOver: () throws -> Void
    ) throws -> (afterTakeover: [String], afterResume: [String], resumedStatus: Int32) {
        paused.signal(SIGSTOP)
        Thread.sleep(forTimeInterval: 2.5)
        for _ in 0..<5 {
            try takeOver()
            if try jobRow(tables, id: job).status == "completed" { break }
        }
        let afterTakeover = try rows(tables, job: job)
        paused.signal(SIGCONT)
        let status = paused.wait()
        return (afterTakeover, try rows(tables, job: job), status)
    }

    public func stopTakeOverResume(job: UInt64, paused: ChildProcess, takeOver: () throws -> Void) throws -> (
        afterTakeover: [String], afterResume: [String], resumedStatus: Int32
    ) {
        try stopTakeOverResume(.email, job: job, paused: paused, takeOver: takeOver)
    }

    public func walletStopTakeOverResume(job: UInt64, paused: ChildProcess, takeOver: () throws -> Void) throws -> (
        afterTakeover: [String], afterResume: [String], resumedStatus: Int32
    ) {
        try stopTakeOverResume(.wallet, job: job, paused: paused, takeOver: takeOver)
    }

    func counts(_ tables: Tables, job: UInt64) throws -> [String: Int] {
        var counts: [String: Int] = [:]
        for row in try db.query(
            "SELECT status, COUNT(*) AS n FROM \(tables.items) WHERE \(tables.fk) = ? GROUP BY status", [job])
        {
            counts[try row.decode("status")] = try row.decode("n")
        }
        return counts
    }

    func jobRow(_ tables: Tables, id: UInt64) throws -> Job {
        let row = try db.queryFirst(
            "SELECT status, reason, total_items, processed_items, failed_items FROM \(tables.jobs) WHERE id = ?", [id])!
        return Job(
            status: try row.decode("status"), reason: try row.decodeIfPresent("reason"),
            total: try row.decode("total_items"), processed: try row.decode("processed_items"),
            failed: try row.decode("failed_items"))
    }

    func countersMatch(_ tables: Tables, job id: UInt64) throws -> Bool {
        let job = try jobRow(tables, id: id)
        let counts = try counts(tables, job: id)
        // The contract's terminal statuses: email items may also end suppressed (not a failure)
        // or become bounced (a failure).
        let failed = (counts["failed"] ?? 0) + (counts["bounced"] ?? 0)
        let terminal =
            (counts[tables.delivered] ?? 0) + failed + (counts["cancelled"] ?? 0) + (counts["suppressed"] ?? 0)
        return job.total == counts.values.reduce(0, +) && job.processed == terminal && job.failed == failed
    }

    /// Every column of an email job's row and its items' rows, as text: to show nothing changed.
    public func snapshot(job: UInt64) throws -> [String] { try rows(.email, job: job) }

    public func statusCounts(job: UInt64) throws -> [String: Int] { try counts(.email, job: job) }

    public struct Job: Sendable {
        public var status: String
        public var reason: String?
        public var total: Int
        public var processed: Int
        public var failed: Int
    }

    public func job(_ id: UInt64) throws -> Job { try jobRow(.email, id: id) }

    /// Whether the job's counters say what its items say.
    public func countersMatchItems(job id: UInt64) throws -> Bool { try countersMatch(.email, job: id) }
}

/// The settings for the `fanout` binary on `database`, sending through `smtp` with `templates`.
public func mailEnvironment(database: TestDatabase, smtp: TestServer, templates: URL) -> [String: String] {
    var env = database.environment
    env["MAIL_HOST"] = "127.0.0.1"
    env["MAIL_PORT"] = String(smtp.port)
    env["MAIL_FROM_ADDRESS"] = "sender@example.test"
    env["MAIL_FROM_NAME"] = "Fanout Test"
    env["FANOUT_TEMPLATES"] = templates.path
    // No pacing: the tests send as fast as the sink takes (DeliverabilityTests pace on purpose).
    env["MAIL_RATE_PER_SECOND"] = "0"
    return env
}

/// A templates folder with a small `plain` email template: `Hello {{name}}` / `Hi {{name}}, code {{code}}.`
public func makeTestTemplates() throws -> URL {
    let folder = TestEnvironment.makeTemporaryDirectory("templates")
    let plain = folder.appendingPathComponent("email/plain")
    try FileManager.default.createDirectory(at: plain, withIntermediateDirectories: true)
    try "Hello {{name}}".write(to: plain.appendingPathComponent("subject.mustache"), atomically: true, encoding: .utf8)
    try "Hi {{name}}, your code is {{code}}.\n".write(
        to: plain.appendingPathComponent("text.mustache"), atomically: true, encoding: .utf8)
    try "<p>Hi {{name}}, your code is <b>{{code}}</b>.</p>\n".write(
        to: plain.appendingPathComponent("html.mustache"), atomically: true, encoding: .utf8)
    let broken = folder.appendingPathComponent("email/broken")
    try FileManager.default.createDirectory(at: broken, withIntermediateDirectories: true)
    try "Hello {{#name}}".write(
        to: broken.appendingPathComponent("subject.mustache"), atomically: true, encoding: .utf8)
    try "text".write(to: broken.appendingPathComponent("text.mustache"), atomically: true, encoding: .utf8)
    return folder
}

extension TestServer {
    /// Recipients of every stored message, from the `.json` files beside the `.eml` files.
    public var deliveredRecipients: [String] {
        messageFiles.compactMap { eml -> [String]? in
            let meta = eml.deletingPathExtension().appendingPathExtension("json")
            guard let data = try? Data(contentsOf: meta),
                let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any]
            else { return nil }
            return object["rcpt_tos"] as? [String]
        }.flatMap { $0 }
    }
}

extension JobFixture {
    /// Inserts a wallet job with `count` cards (card_id 1000+N, platform google/apple) or the given
    /// cards; returns the job id.
    @discardableResult
    public func walletJob(
        company: UInt64, template: String = "collect", count: Int = 0,
        cards: [(cardID: UInt64?, platform: String?, data: String?)] = []
    ) throws -> UInt64 {
        let job = try insertJob(.wallet, company: company, template: template, status: "pending")
        try insertItems(
            .wallet, job: job, columns: "card_id, platform, data", count: count,
            generated:
                "1000 + seq, IF(seq % 2 = 0, 'google', 'apple'), JSON_OBJECT('holder_name', CONCAT('Holder ', seq))",
            generatedParameters: [], rows: cards.map { [$0.cardID, $0.platform, $0.data] }
        )
        return job
    }

    public struct WalletItem: Sendable {
        public var id: UInt64
        public var status: String
        public var reason: String?
        public var attempts: Int
        public var httpStatus: Int?
        public var inDoubt: Bool
    }

    public func walletItems(job: UInt64) throws -> [WalletItem] {
        try db.query(
            "SELECT id, status, reason, attempts, http_status, in_doubt "
                + "FROM bulk_wallet_api_job_items WHERE bulk_wallet_api_job_id = ? ORDER BY id",
            [job]
        ).map {
            WalletItem(
                id: try $0.decode("id"), status: try $0.decode("status"), reason: try $0.decodeIfPresent("reason"),
                attempts: try $0.decode("attempts"), httpStatus: try $0.decodeIfPresent("http_status"),
                inDoubt: try $0.decode("in_doubt"))
        }
    }

    public func walletCounts(job: UInt64) throws -> [String: Int] { try counts(.wallet, job: job) }

    public func walletJobRow(_ id: UInt64) throws -> Job { try jobRow(.wallet, id: id) }

    public func walletCountersMatchItems(job id: UInt64) throws -> Bool { try countersMatch(.wallet, job: id) }
}

/// Wallet templates for tests: `collect` (POST a JSON body to /collect/CARD on WALLET_BASE_URL),
/// `route` (POST to the path in the item's data, for /status, /flaky, /retry-after, /slow) and
/// `header` (a header from the item's data).
public func makeWalletTemplates(in folder: URL? = nil) throws -> URL {
    let folder = folder ?? TestEnvironment.makeTemporaryDirectory("templates")
    let wallet = folder.appendingPathComponent("wallet")
    try FileManager.default.createDirectory(at: wallet, withIntermediateDirectories: true)
    try """
    POST {{{env.WALLET_BASE_URL}}}/collect/{{card_id}}?platform={{platform}}
    Content-Type: application/json
    Idempotency-Key: {{idempotency_key}}
    Authorization: Bearer {{env.WALLET_TOKEN}}

    {"card_id": {{card_id}}, "platform": "{{platform}}", "holder": "{{holder_name}}", \
    "note": "{{note}}", "job": {{job.id}}, "item": {{item.id}}}
    """.write(to: wallet.appendingPathComponent("collect.http.mustache"), atomically: true, encoding: .utf8)
    try """
    POST {{{env.WALLET_BASE_URL}}}/{{{path}}}
    Content-Type: application/json

    {"card_id": {{card_id}}}
    """.write(to: wallet.appendingPathComponent("route.http.mustache"), atomically: true, encoding: .utf8)
    try """
    POST {{{env.WALLET_BASE_URL}}}/collect/{{card_id}}
    X-Note: {{note}}

    plain text body
    """.write(to: wallet.appendingPathComponent("header.http.mustache"), atomically: true, encoding: .utf8)
    return folder
}

/// A fresh test database with its job fixture, an SMTP sink, and the `fanout` settings for both
/// (test templates, no pacing) with `extra` on top: the start of every mail test.
public func withMailSetup(
    smtpArguments: [String] = [], extra: [String: String] = [:],
    _ body: (JobFixture, TestServer, [String: String]) throws -> Void
) throws {
    try withTestDatabase { database, db in
        let fixture = try JobFixture(database: database, db: db)
        let smtp = try TestServer.smtp(smtpArguments)
        var env = mailEnvironment(database: database, smtp: smtp, templates: try makeTestTemplates())
        for (key, value) in extra { env[key] = value }
        try body(fixture, smtp, env)
    }
}
