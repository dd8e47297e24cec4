import Foundation
import MariaDB
import Testing
import TestSupport

/// `fanout bounces` against a real IMAP server (Debian's dovecot) seeded with bounces of several
/// MTAs' styles about messages the built binary sent.
@Suite(.enabled(if: TestEnvironment.hasDatabase && TestEnvironment.canStartServers))
struct BounceTests {
    static let fixtures = [
        "postfix-hard", "exim-hard", "gmail-hard", "exchange-hard", "postfix-soft", "mailbox-full", "arf-complaint",
        "auto-reply", "unrelated",
    ]

    /// Fixture `name` made about one item the binary sent, written into `folder`.
    static func report(
        _ name: String, job: UInt64, item: (id: UInt64, email: String), installation: String, in folder: URL
    ) throws -> URL {
        let source = TestEnvironment.repositoryRoot.appendingPathComponent("Tests/fixtures/bounces/\(name).eml")
        let text = try String(contentsOf: source, encoding: .utf8)
            .replacingOccurrences(
                of: "{{MESSAGE_ID}}", with: "fanout.email.\(job).\(item.id).\(installation)@example.test"
            )
            .replacingOccurrences(of: "{{RECIPIENT}}", with: item.email)
            .replacingOccurrences(of: "{{VERP}}", with: "j\(job)")
        let file = folder.appendingPathComponent("\(name)-\(item.id).eml")
        try text.write(to: file, atomically: true, encoding: .utf8)
        return file
    }

    /// `fanout work` reads the mailbox too: at start, then every BOUNCE_IMAP_EVERY, while it runs.
    @Test func aWorkerReadsTheBounceMailboxAtStartAndThenEveryInterval() throws {
        try withMailSetup { fixture, smtp, env in
            var env = env
            let db = fixture.db
            let job = try fixture.emailJob(company: 5, count: 3)
            #expect(try runFanout(["emails:process-jobs"], environment: env).status == 0)
            let items = try fixture.items(job: job)
            try #require(items.count == 3)
            let installation = try #require(
                try db.queryFirst("SELECT id FROM fanout_installation")?.decode("id", as: String.self))
            let folder = TestEnvironment.makeTemporaryDirectory("worker-bounces")
            let imap = try IMAPDouble()
            try imap.seed([
                try Self.report(
                    "postfix-hard", job: job, item: (items[0].id, items[0].email), installation: installation,
                    in: folder)
            ])
            env["BOUNCE_IMAP_URL"] = imap.url
            env["BOUNCE_IMAP_USERNAME"] = "bounces"
            env["BOUNCE_IMAP_PASSWORD"] = "bounce-secret"
            env["BOUNCE_IMAP_EVERY"] = "1s"
            let output = TestEnvironment.scratchDirectory.appendingPathComponent("worker-bounces-\(UUID().uuidString)")
            let worker = try startFanout(["work", "--sleep", "1s"], environment: env, output: output)
            #expect(waitUntil(seconds: 60) { (try? fixture.items(job: job).first?.status) == "bounced" })
            // One more report while it runs: read at the next interval.
            try imap.seed([
                try Self.report(
                    "exim-hard", job: job, item: (items[1].id, items[1].email), installation: installation, in: folder)
            ])
            #expect(waitUntil(seconds: 60) { (try? fixture.items(job: job).dropFirst().first?.status) == "bounced" })
            worker.signal(SIGTERM)
            #expect(worker.wait(seconds: 60) == 0)
            #expect(try fixture.items(job: job).map(\.status) == ["bounced", "bounced", "sent"])
            #expect(try fixture.countersMatchItems(job: job))
            let log = (try? String(contentsOf: output.appendingPathExtension("err"), encoding: .utf8)) ?? ""
            #expect(log.contains("bounce mailbox: Read 1 new message: 1 hard bounce"), "\(log)")
            #expect(!log.contains("bounce-secret"))
        }
    }

    @Test func hardBouncesFailTheirItemsAndComplaintsSuppressNothingElseChanges() throws {
        try withMailSetup { fixture, smtp, env in
            var env = env
            let db = fixture.db
            let job = try fixture.emailJob(company: 5, count: 8)
            #expect(try runFanout(["emails:process-jobs"], environment: env).status == 0)
            let items = try fixture.items(job: job)
            try #require(items.count == 8)
            #expect(items.allSatisfy { $0.status == "sent" })
            let installation = try #require(
                try db.queryFirst("SELECT id FROM fanout_installation")?.decode("id", as: String.self))
            // Each fixture about one item (the last is about none of ours).
            let folder = TestEnvironment.makeTemporaryDirectory("bounces")
            var files: [URL] = []
            for (index, name) in Self.fixtures.enumerated() {
                let item = items[min(index, items.count - 1)]
                files.append(
                    try Self.report(name, job: job, item: (item.id, item.email), installation: installation, in: folder)
                )
            }
            let imap = try IMAPDouble()
            try imap.seed(files)
            env["BOUNCE_IMAP_URL"] = imap.url
            env["BOUNCE_IMAP_USERNAME"] = "bounces"
            env["BOUNCE_IMAP_PASSWORD"] = "bounce-secret"
            let read = try runFanout(["bounces"], environment: env)
            #expect(read.status == 0, "\(read.stderr)")
            #expect(
                read.stdout.contains("Read 9 new messages: 4 hard bounces") && read.stdout.contains("1 complaint")
                    && read.stdout.contains("2 soft") && read.stdout.contains("2 not about"), "\(read.stdout)")
            let after = try fixture.items(job: job)
            #expect(
                after.map(\.status) == ["bounced", "bounced", "bounced", "bounced", "sent", "sent", "sent", "sent"])
            try #require(after.count == 8)
            #expect(
                after.prefix(4).allSatisfy { $0.reason?.hasPrefix("bounced: 5.1.") == true }, "\(after.map(\.reason))")
            #expect(after[6].reason?.hasPrefix("delivered, then reported as spam") == true)
            #expect(after[4].reason == nil && after[5].reason == nil && after[7].reason == nil)
            let suppressed = try db.query(
                "SELECT email, reason FROM fanout_suppressions WHERE company_id = 5 ORDER BY email"
            )
            .map { "\(try $0.decode("email", as: String.self)) \(try $0.decode("reason", as: String.self))" }
            #expect(
                suppressed.sorted()
                    == (items.prefix(4).map { "\($0.email) hard_bounce" } + ["\(items[6].email) complaint"]).sorted())
            #expect(try fixture.countersMatchItems(job: job))
            // Read again: nothing new, nothing changes.
            let again = try runFanout(["bounces"], environment: env)
            #expect(again.stdout.contains("Read 0 new messages"), "\(again.stdout)")
            #expect(try fixture.items(job: job).map(\.status) == after.map(\.status))
            // A mailbox whose name needs quoting in IMAP and encoding in the URL: read as well,
            // and the same reports change nothing more (their items are already bounced).
            try imap.seed(files, mailbox: "Bounce Box")
            var spaced = env
            spaced["BOUNCE_IMAP_URL"] = imap.url.replacingOccurrences(of: "/INBOX", with: "/Bounce%20Box")
            let other = try runFanout(["bounces"], environment: spaced)
            #expect(
                other.status == 0 && other.stdout.contains("Read 9 new messages"), "\(other.stdout) \(other.stderr)")
            #expect(try fixture.items(job: job).map(\.status) == after.map(\.status))
            // A wrong password: one line, exit 69, nothing changed.
            env["BOUNCE_IMAP_PASSWORD"] = "wrong"
            let refused = try runFanout(["bounces"], environment: env)
            #expect(refused.status != 0 && refused.stderr.split(separator: "\n").count == 1, "\(refused.stderr)")
            #expect(!refused.stderr.contains("wrong"))
        }
    }
}
