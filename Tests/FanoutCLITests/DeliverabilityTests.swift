import Foundation
import MariaDB
import Testing
import TestSupport

/// One-click unsubscribe (RFC 8058), suppressions and Message-IDs, through the built binaries
/// against the real MariaDB, SMTP sink and fanout-web.
@Suite(.enabled(if: TestEnvironment.hasDatabase && TestEnvironment.canStartServers))
struct DeliverabilityTests {
    static let secret = "unsubscribe-secret-for-tests-0123456789"

    struct Setup {
        var fixture: JobFixture
        var smtp: TestServer
        var web: WebServer
        var env: [String: String]
    }

    /// The page runs signed-in and read-only: the recipient's link must need neither.
    func withUnsubscribe(_ body: (Setup) throws -> Void) throws {
        try withTestDatabase { database, db in
            let fixture = try JobFixture(database: database, db: db)
            let smtp = try TestServer.smtp()
            let port = try unusedLocalPort()
            var env = EmailTickTests.environment(fixture, smtp, try makeTestTemplates())
            env["FANOUT_UNSUBSCRIBE_URL"] = "http://127.0.0.1:\(port)/unsubscribe/{token}"
            env["FANOUT_UNSUBSCRIBE_SECRET"] = Self.secret
            env["FANOUT_UNSUBSCRIBE_MAILTO"] = "unsubscribe@example.test"
            env["FANOUT_LIST_ID"] = "Newsletter <news.example.test>"
            var webEnv = env
            webEnv["FANOUT_WEB_USER"] = "ops"
            webEnv["FANOUT_WEB_PASSWORD"] = "ops-password"
            let web = try WebServer(["--read-only"], environment: webEnv, port: port)
            try body(Setup(fixture: fixture, smtp: smtp, web: web, env: env))
        }
    }

    /// The header lines of the message sent to `recipient` (unfolded).
    func headers(_ smtp: TestServer, to recipient: String) throws -> [String: String] {
        for file in smtp.messageFiles {
            let text = try String(contentsOf: file, encoding: .utf8)
            let head = text.components(separatedBy: "\r\n\r\n")[0].replacingOccurrences(of: "\r\n ", with: " ")
            var fields: [String: String] = [:]
            for line in head.components(separatedBy: "\r\n") {
                guard let colon = line.firstIndex(of: ":") else { continue }
                fields[String(line[..<colon])] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            }
            if fields["To"]?.contains(recipient) == true { return fields }
        }
        throw TestServerError(message: "no message to \(recipient)")
    }

    @Test func marketingMailCarriesOneClickUnsubscribeThatWorksWithoutLogin() throws {
        try withUnsubscribe { setup in
            let job = try setup.fixture.emailJob(company: 1, count: 3)
            #expect(try runFanout(["emails:process-jobs"], environment: setup.env).status == 0)
            let recipient = "user-c1-j\(job)-2@example.test"
            let fields = try headers(setup.smtp, to: recipient)
            let list = try #require(fields["List-Unsubscribe"])
            #expect(fields["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click")
            #expect(list.hasSuffix(", <mailto:unsubscribe@example.test?subject=unsubscribe>"), "\(list)")
            #expect(!list.contains(recipient), "the address is never in the link")
            #expect(fields["Feedback-ID"] == "\(job):1:marketing:fanout")
            #expect(fields["List-Id"] == "Newsletter <news.example.test>")
            // The Message-ID carries this database's installation id.
            let installation = try #require(
                try setup.fixture.db.queryFirst("SELECT id FROM fanout_installation")?.decode("id", as: String.self))
            #expect(installation.count == 16)
            #expect(fields["Message-ID"]?.contains(".\(installation)@") == true, "\(fields["Message-ID"] ?? "")")
            let url = try #require(list.firstMatch(of: /<(http[^>]+)>/)?.1).description
            let path = String(url.dropFirst("http://127.0.0.1:\(setup.web.port)".count))
            // A forged or altered token changes nothing.
            let altered = String(path.dropLast()) + (path.hasSuffix("A") ? "B" : "A")
            for forged in [altered, "/unsubscribe/1.1.AAAAAAAAAAAAAAAAAAAAAA", "/unsubscribe/nonsense"] {
                let answer = try setup.web.request(forged, method: "POST", form: ["List-Unsubscribe": "One-Click"])
                #expect(answer.status == 404, "\(forged)")
            }
            // GET asks (link scanners follow links) and changes nothing.
            let page = try setup.web.request(path)
            #expect(page.status == 200 && page.body.contains("Unsubscribe u***@example.test?"), "\(page.body)")
            #expect(try setup.fixture.db.query("SELECT email FROM fanout_suppressions").isEmpty)
            // The mailbox provider's one-click POST: no login, no form token, read-only page.
            let done = try setup.web.request(path, method: "POST", form: ["List-Unsubscribe": "One-Click"])
            #expect(done.status == 200, "\(done.body)")
            let row = try #require(try setup.fixture.db.queryFirst("SELECT * FROM fanout_suppressions"))
            #expect(try row.decode("email", as: String.self) == recipient)
            #expect(try row.decode("reason", as: String.self) == "unsubscribe")
            #expect(try row.decode("company_id", as: UInt64.self) == 1)
            #expect(try row.decodeIfPresent("source", as: String.self)?.hasPrefix("one-click") == true)
        }
    }

    @Test func theNextTickSkipsSuppressedRecipientsMidJob() throws {
        try withUnsubscribe { setup in
            let marketing = try setup.fixture.emailJob(company: 1, count: 80)
            #expect(try runFanout(["emails:process-jobs"], environment: setup.env).status == 0)
            // An unsubscribe (one-click) and a hard bounce arrive while the job runs.
            let unsubscribed = "user-c1-j\(marketing)-60@example.test"
            let bounced = "USER-C1-J\(marketing)-70@example.test"
            let item60 = try #require(try setup.fixture.items(job: marketing).first { $0.email == unsubscribed }?.id)
            // Item 60's link, made as the README documents it (a host app can do the same).
            let mac = try runProcess(
                URL(fileURLWithPath: "/bin/sh"),
                [
                    "-c",
                    "printf 'fanout-unsubscribe.1.\(item60)' | openssl dgst -sha256 -hmac '\(Self.secret)' -binary "
                        + "| head -c 16 | base64 | tr '+/' '-_' | tr -d '=\n'",
                ]
            ).stdout
            let oneClick = try setup.web.request(
                "/unsubscribe/1.\(item60).\(mac)", method: "POST", form: ["List-Unsubscribe": "One-Click"])
            #expect(oneClick.status == 200, "\(oneClick.body)")
            let made = try runFanout(
                ["suppress", "add", "--company", "1", bounced, "--reason", "hard_bounce"],
                environment: setup.env)
            #expect(made.status == 0, "\(made.stderr)")
            // A transactional job to the same people: the unsubscribe does not hold it back.
            let transactional = try setup.fixture.emailJob(
                company: 1, recipients: [(unsubscribed, nil, nil), (bounced.lowercased(), nil, nil)])
            try setup.fixture.db.execute(
                "UPDATE bulk_email_jobs SET mail_type = 'transactional' WHERE id = ?", [transactional])
            for _ in 0..<3 { #expect(try runFanout(["emails:process-jobs"], environment: setup.env).status == 0) }
            let items = try setup.fixture.items(job: marketing)
            #expect(items.filter { $0.status == "suppressed" }.map(\.email) == [unsubscribed, bounced.lowercased()])
            let reasons = items.filter { $0.status == "suppressed" }.compactMap(\.reason)
            try #require(reasons.count == 2)
            #expect(reasons[0].hasPrefix("suppressed: unsubscribe (one-click (item \(item60))) since "), "\(reasons)")
            #expect(reasons[1].hasPrefix("suppressed: hard_bounce (cli) since "), "\(reasons)")
            let delivered = setup.smtp.messageFiles.compactMap { try? String(contentsOf: $0, encoding: .utf8) }
            #expect(
                delivered.filter { $0.contains("To: <\(unsubscribed)>") || $0.contains(unsubscribed + ">") }
                    .count == 1, "only the transactional message reached the unsubscribed recipient")
            let after = try setup.fixture.items(job: transactional)
            #expect(after.map(\.status) == ["sent", "suppressed"], "\(after.map { $0.reason ?? "" })")
            // Not sent, not a failure (the contract): counted as processed, not as failed.
            #expect(try setup.fixture.job(transactional).failed == 0)
            #expect(try setup.fixture.countersMatchItems(job: marketing))
            #expect(try setup.fixture.countersMatchItems(job: transactional))
            // Transactional mail carries no unsubscribe link.
            #expect(delivered.filter { $0.contains("List-Unsubscribe") }.count == 78)
        }
    }

    /// An unsubscribe that arrives while a batch sends holds back the messages not handed to the
    /// server yet (already claimed and rendered): checked at each write, not only at the claim.
    @Test func aSuppressionMidBatchHoldsBackWhatIsNotSentYet() throws {
        try withTestDatabase { database, db in
            let fixture = try JobFixture(database: database, db: db)
            let smtp = try TestServer.smtp()
            try smtp.setMessageDelay(seconds: 0.3)
            let env = EmailTickTests.environment(fixture, smtp, try makeTestTemplates())
            let job = try fixture.emailJob(company: 1, count: 30)
            let output = TestEnvironment.scratchDirectory.appendingPathComponent("mid-batch-\(UUID().uuidString)")
            let tick = try startFanout(
                ["emails:process-jobs", "--batch-size", "30", "--connections", "1"], environment: env, output: output)
            // The whole batch is claimed by now (one tick, one claim of 30), the first message sent.
            #expect(waitUntil(seconds: 60) { smtp.messageFiles.count >= 1 })
            let late = "user-c1-j\(job)-25@example.test"
            // Claimed before the suppression: the claim's own check cannot have caught it.
            #expect(try fixture.items(job: job).first { $0.email == late }?.status == "processing")
            let added = try runFanout(
                ["suppress", "add", "--company", "1", late, "--reason", "unsubscribe"], environment: env)
            #expect(added.status == 0, "\(added.stderr)")
            try smtp.setMessageDelay(seconds: 0)
            #expect(tick.wait(seconds: 120) == 0)
            let items = try fixture.items(job: job)
            let suppressed = items.filter { $0.status == "suppressed" }
            #expect(suppressed.map(\.email) == [late])
            #expect(
                suppressed.first?.reason?.hasPrefix("suppressed: unsubscribe (cli) since ") == true, "\(suppressed)")
            #expect(items.filter { $0.status == "sent" }.count == 29)
            let delivered = smtp.messageFiles.compactMap { try? String(contentsOf: $0, encoding: .utf8) }
            #expect(delivered.count == 29)
            #expect(!delivered.contains { $0.contains(late) })
            // Not a failure, and no attempt charged.
            #expect(suppressed.first?.attempts == 0)
            let row = try fixture.job(job)
            #expect(row.status == "completed" && row.processed == 30 && row.failed == 0)
        }
    }

    @Test func suppressAddListRemoveImport() throws {
        try withTestDatabase { database, db in
            _ = try JobFixture(database: database, db: db)
            let env = database.environment
            #expect(
                try runFanout(["suppress", "add", "--company", "3", " Ann@Example.TEST "], environment: env).status
                    == 0)
            let file = TestEnvironment.makeTemporaryDirectory("suppress").appendingPathComponent("list.csv")
            try "name,email\nBob,bob@example.test\nBad,not-an-address\nCy,CY@example.test\n".write(
                to: file, atomically: true, encoding: .utf8)
            let imported = try runFanout(
                ["suppress", "import", "--company", "3", file.path, "--reason", "complaint"], environment: env)
            #expect(imported.status == 0, "\(imported.stderr)")
            #expect(imported.stdout.contains("Suppressed 2 new addresses"), "\(imported.stdout)")
            #expect(imported.stdout.contains("line 3: 'not-an-address'"))
            let list = try runFanout(["suppress", "list", "--company", "3"], environment: env)
            #expect(
                list.stdout.split(separator: "\n").map { String($0.split(separator: "\t")[0]) }
                    == ["ann@example.test", "bob@example.test", "cy@example.test"])
            #expect(
                try runFanout(["suppress", "remove", "--company", "3", "ANN@example.test"], environment: env).status
                    == 0)
            let again = try runFanout(["suppress", "remove", "--company", "3", "ann@example.test"], environment: env)
            #expect(again.status == 1 && again.stderr.contains("is not suppressed"))
            #expect(
                try runFanout(["suppress", "list", "--company", "4"], environment: env).stdout
                    .contains("No suppressed addresses"))
            // A later unsubscribe never weakens a suppression of every mail.
            _ = try runFanout(
                ["suppress", "add", "--company", "3", "dora@example.test", "--reason", "hard_bounce"], environment: env)
            _ = try runFanout(
                ["suppress", "add", "--company", "3", "dora@example.test", "--reason", "unsubscribe"], environment: env)
            #expect(
                try runFanout(["suppress", "list", "--company", "3"], environment: env).stdout
                    .contains("dora@example.test\thard_bounce"))
        }
    }

    @Test func withoutAnUnsubscribeURLMarketingMailSaysSoOnce() throws {
        try withMailSetup { fixture, smtp, env in
            try fixture.emailJob(company: 1, count: 3)
            let tick = try runFanout(["emails:process-jobs"], environment: env)
            #expect(tick.status == 0)
            #expect(tick.stderr.components(separatedBy: "FANOUT_UNSUBSCRIBE_URL is not set").count - 1 == 1)
            #expect(smtp.messageFiles.count == 3, "the messages this check reads arrived")
            #expect(
                smtp.messageFiles.allSatisfy {
                    !((try? String(contentsOf: $0, encoding: .utf8)) ?? "List-Unsubscribe").contains("List-Unsubscribe")
                })
            var bad = env
            bad["FANOUT_UNSUBSCRIBE_URL"] = "https://example.test/u/{token}"
            bad["FANOUT_UNSUBSCRIBE_SECRET"] = "short"
            let refused = try runFanout(["emails:process-jobs"], environment: bad)
            #expect(refused.status == 78 && refused.stderr.contains("FANOUT_UNSUBSCRIBE_SECRET"))
        }
    }

    @Test func signedMailVerifiesOfflineAndCoversTheUnsubscribeHeaders() throws {
        try withUnsubscribe { setup in
            let key = TestEnvironment.makeTemporaryDirectory("dkim").appendingPathComponent("dkim.pem").path
            let made = try runFanout(
                ["dkim", "keygen", "--domain", "example.test", "--selector", "s1", "--out", key], environment: setup.env
            )
            #expect(made.status == 0, "\(made.stderr)")
            let record = try #require(made.stdout.firstMatch(of: /IN TXT "([^"]+)"/)?.1).description
            var env = setup.env
            env["MAIL_DKIM_DOMAIN"] = "example.test"
            env["MAIL_DKIM_SELECTOR"] = "s1"
            env["MAIL_DKIM_KEY_FILE"] = key
            try setup.fixture.emailJob(company: 1, count: 3)
            #expect(try runFanout(["emails:process-jobs"], environment: env).status == 0)
            #expect(setup.smtp.messageFiles.count == 3)
            for file in setup.smtp.messageFiles {
                #expect(try dkimpyVerifies(file, record: record, name: "s1._domainkey.example.test."), "\(file)")
                let text = try String(contentsOf: file, encoding: .utf8)
                let head = text.components(separatedBy: "\r\n\r\n")[0].lowercased()
                let signed = head.filter { !$0.isWhitespace }.firstMatch(of: /;h=([^;]+);/)?.1.split(separator: ":")
                #expect(signed?.contains("list-unsubscribe") == true, "\(head)")
                #expect(signed?.contains("list-unsubscribe-post") == true)
                // A changed body no longer verifies.
                let changed = file.deletingLastPathComponent().appendingPathComponent("changed.txt")
                try text.replacingOccurrences(of: "Hi ", with: "Hey ").write(
                    to: changed, atomically: true, encoding: .utf8)
                #expect(try !dkimpyVerifies(changed, record: record, name: "s1._domainkey.example.test."))
                try FileManager.default.removeItem(at: changed)
            }
            // doctor: the key signs for the From address's domain (DMARC aligns).
            let doctor = try runFanout(["doctor"], environment: env)
            #expect(doctor.stdout.contains("signs as d=example.test, aligned"), "\(doctor.stdout)")
            #expect(doctor.stdout.contains("has no visible {{unsubscribe_url}} link"))
            // A key that cannot sign stops the tick before anything is sent.
            let garbage = key + ".bad"
            try "-----BEGIN RSA PRIVATE KEY-----\nnot a key\n-----END RSA PRIVATE KEY-----\n".write(
                toFile: garbage, atomically: true, encoding: .utf8)
            env["MAIL_DKIM_KEY_FILE"] = garbage
            try setup.fixture.emailJob(company: 2, count: 2)
            let refused = try runFanout(["emails:process-jobs"], environment: env)
            #expect(refused.status == 78 && refused.stderr.contains("MAIL_DKIM_KEY_FILE"), "\(refused.stderr)")
            #expect(setup.smtp.messageFiles.count == 3)
        }
    }

    /// A throttle reply pauses the account for everybody: the tick exits 0 and says until when,
    /// the unsent items stay pending uncharged, another tick sends nothing, and after the pause
    /// everything goes.
    @Test func aThrottleReplyPausesTheAccountForEverybody() throws {
        try withMailSetup { fixture, smtp, env in
            let job = try fixture.emailJob(
                company: 1,
                recipients: (1...6).map { n in
                    (n == 3 ? "throttle-once-3@example.test" : "p\(n)@example.test", nil, nil)
                })
            let first = try runFanout(["emails:process-jobs", "--connections", "1"], environment: env)
            #expect(first.status == 0, "\(first.stderr)")
            #expect(first.stderr.contains("paused by the server until"), "\(first.stderr)")
            #expect(first.stderr.contains("450 4.7.1"))
            let items = try fixture.items(job: job)
            #expect(items.map(\.status) == ["sent", "sent", "pending", "pending", "pending", "pending"])
            #expect(items.filter { $0.status == "pending" }.allSatisfy { $0.attempts == 0 }, "nothing charged")
            let jobs = try runFanout(["jobs"], environment: env)
            #expect(jobs.stdout.contains("paused by the server until"), "\(jobs.stdout)")
            // Another tick (any process, any host) waits too.
            let second = try runFanout(["emails:process-jobs"], environment: env)
            #expect(second.status == 0 && smtp.messageFiles.count == 2, "\(second.stderr)")
            // The pause ends (here: cleared by hand, as an hour passing would): all of it goes.
            try fixture.db.execute("UPDATE fanout_rates SET next_at = 0, paused_at = 0")
            #expect(try runFanout(["emails:process-jobs"], environment: env).status == 0)
            #expect(try fixture.statusCounts(job: job) == ["sent": 6])
            let pause = try fixture.db.queryFirst("SELECT pause_seconds FROM fanout_rates")
            #expect(try pause?.decode("pause_seconds", as: Double.self) == 60)
        }
    }

    /// A throttle met by one tick pauses another tick that is sending through the same account at
    /// that moment (another company's job): it stops mid-batch at its next paced start, exits 0
    /// saying so, and its unsent items wait uncharged.
    @Test func aThrottleReplyPausesAConcurrentTickMidBatch() throws {
        try withMailSetup { fixture, smtp, env in
            var env = env
            env["MAIL_RATE_PER_SECOND"] = "10"
            let long = try fixture.emailJob(company: 2, count: 60)
            let throttled = try fixture.emailJob(
                company: 1, recipients: [("t1@example.test", nil, nil), ("throttle-once-2@example.test", nil, nil)])
            let output = TestEnvironment.scratchDirectory.appendingPathComponent("concurrent-\(UUID().uuidString)")
            let sending = try startFanout(
                ["emails:process-jobs", "--batch-size", "60", "--connections", "1"], environment: env,
                output: output.appendingPathExtension("long"))
            #expect(waitUntil(seconds: 60) { smtp.messageFiles.count >= 2 }, "the long job is sending")
            let throttling = try runFanout(["emails:process-jobs", "--connections", "1"], environment: env)
            #expect(throttling.status == 0 && throttling.stderr.contains("paused by the server until"))
            #expect(sending.wait(seconds: 120) == 0)
            let said = (try? String(contentsOf: output.appendingPathExtension("long.err"), encoding: .utf8)) ?? ""
            #expect(said.contains("paused by the server until") && said.contains("450 4.7.1"), "\(said)")
            let items = try fixture.items(job: long)
            let sent = items.filter { $0.status == "sent" }.count
            let waiting = items.filter { $0.status == "pending" }
            #expect(sent >= 2 && sent + waiting.count == 60 && waiting.count > 0, "\(sent) sent")
            #expect(waiting.allSatisfy { $0.attempts == 0 }, "nothing charged")
            #expect(try fixture.statusCounts(job: throttled) == ["sent": 1, "pending": 1])
            #expect(try fixture.countersMatchItems(job: long))
        }
    }

    /// MAIL_RATE_PER_SECOND holds for two overlapping ticks together (times at the sink).
    @Test func pacingPerAccountHoldsAcrossTwoTicks() throws {
        try withMailSetup { fixture, smtp, env in
            var env = env
            env["MAIL_RATE_PER_SECOND"] = "20"
            try fixture.emailJob(company: 1, count: 40)
            try fixture.emailJob(company: 2, count: 40)
            #expect(try runTogether(2, ["emails:process-jobs", "--batch-size", "40"], environment: env) == [0, 0])
            let times = smtp.messageFiles.compactMap { file -> Double? in
                let meta = file.deletingPathExtension().appendingPathExtension("json")
                guard let data = try? Data(contentsOf: meta) else { return nil }
                return (try? JSONSerialization.jsonObject(with: data) as? [String: Any])?["received_at"] as? Double
            }.sorted()
            #expect(times.count == 80)
            // A second's worth at once (the burst) plus the rate; two processes alone would double it.
            #expect(mostWithin(1, times) <= 41, "\(mostWithin(1, times))")
            #expect(mostWithin(3, times) <= 81 && mostWithin(2, times) <= 61, "\(mostWithin(2, times)) in two seconds")
        }
    }

    @Test func previewPrintsTheMessageAndTestSendSendsItToSomeoneElse() throws {
        try withUnsubscribe { setup in
            let job = try setup.fixture.emailJob(company: 1, count: 3)
            let second = try #require(try setup.fixture.items(job: job).dropFirst().first)
            let preview = try runFanout(
                ["preview", "email", String(job), "--item", String(second.id)], environment: setup.env)
            #expect(preview.status == 0, "\(preview.stderr)")
            #expect(preview.stdout.contains("RCPT TO: <\(second.email)>"))
            #expect(preview.stdout.contains("List-Unsubscribe-Post: List-Unsubscribe=One-Click"))
            #expect(preview.stdout.contains("Message-ID: <fanout.email.\(job).\(second.id)."))
            let sent = try runFanout(
                ["test-send", "email", String(job), "--to", "me@example.test"], environment: setup.env)
            #expect(sent.status == 0, "\(sent.stderr)")
            #expect(setup.smtp.deliveredRecipients == ["me@example.test"])
            #expect(try setup.fixture.statusCounts(job: job) == ["pending": 3], "the job did not change")
            let missing = try runFanout(["preview", "email", "999"], environment: setup.env)
            #expect(missing.status == 1 && missing.stderr.contains("no email job 999"), "\(missing.stderr)")
        }
    }

    /// Ten policy refusals in a row stop the job with a reason, instead of burning the list.
    @Test func aListThatKeepsBeingRefusedForPolicyStopsTheJob() throws {
        try withMailSetup { fixture, smtp, env in
            let job = try fixture.emailJob(
                company: 1, recipients: (1...14).map { ("reject-data554-\($0)@example.test", nil, nil) })
            let tick = try runFanout(["emails:process-jobs", "--connections", "1"], environment: env)
            #expect(tick.status == 0, "\(tick.stderr)")
            let row = try fixture.job(job)
            #expect(row.status == "failed")
            #expect(
                row.reason?.hasPrefix("Stopped: 10 messages in a row were refused for policy (554") == true,
                "\(row.reason ?? "")")
            let items = try fixture.items(job: job)
            #expect(items.filter { $0.reason?.hasPrefix("554") == true }.count == 9)
            #expect(items.filter { $0.reason == row.reason }.count == 5, "the rest were never tried")
            #expect(items.filter { $0.reason == row.reason }.allSatisfy { $0.attempts == 0 })
        }
    }

    /// MAIL_RATE_PER_HOUR holds for two overlapping ticks together (counted at the sink); the
    /// rest waits, uncharged, and says until when.
    @Test func anHourlyLimitHoldsAcrossTwoTicks() throws {
        try withMailSetup { fixture, smtp, env in
            var env = env
            env["MAIL_RATE_PER_HOUR"] = "25"
            let first = try fixture.emailJob(company: 1, count: 20)
            let second = try fixture.emailJob(company: 2, count: 20)
            #expect(try runTogether(2, ["emails:process-jobs"], environment: env) == [0, 0])
            #expect(smtp.messageFiles.count <= 25, "\(smtp.messageFiles.count) sent with a limit of 25 an hour")
            #expect(smtp.messageFiles.count >= 15, "the limit was used, not wasted: \(smtp.messageFiles.count)")
            let counts = [try fixture.statusCounts(job: first), try fixture.statusCounts(job: second)]
            #expect(counts.map { $0["sent", default: 0] }.reduce(0, +) == smtp.messageFiles.count, "\(counts)")
            let waiting = try fixture.items(job: first) + fixture.items(job: second)
            #expect(waiting.filter { $0.status == "pending" }.allSatisfy { $0.attempts == 0 })
            let jobs = try runFanout(["jobs"], environment: env)
            #expect(jobs.stdout.contains("hourly limit reached until"), "\(jobs.stdout)")
            // A third tick uses what the first two took and did not send (given back), and no more.
            let again = try runFanout(["emails:process-jobs"], environment: env)
            #expect(again.status == 0 && smtp.messageFiles.count == 25, "\(smtp.messageFiles.count) sent")
        }
    }
}
