import Foundation
import MariaDB
import Testing
import TestSupport

/// The cron tick for email jobs, run as cron runs it: the built binary against the real MariaDB
/// and a real SMTP server.
@Suite(.enabled(if: TestEnvironment.hasDatabase && TestEnvironment.canStartServers))
struct EmailTickTests {
    static func environment(
        _ fixture: JobFixture, _ smtp: TestServer, _ templates: URL, _ extra: [String: String] = [:]
    ) -> [String: String] {
        var env = mailEnvironment(database: fixture.database, smtp: smtp, templates: templates)
        for (key, value) in extra { env[key] = value }
        return env
    }

    @Test func batchesOfFiftyThenOfSeven() throws {
        try withMailSetup { fixture, smtp, env in
            let job = try fixture.emailJob(company: 1, count: 120)
            let first = try runFanout(["emails:process-jobs"], environment: env)
            #expect(first.status == 0, "\(first.stderr)")
            #expect(try fixture.statusCounts(job: job) == ["sent": 50, "pending": 70])
            #expect(try fixture.job(job).total == 120)
            #expect(try fixture.job(job).status == "processing")
            #expect(try fixture.countersMatchItems(job: job))
            let second = try runFanout(["emails:process-jobs", "--batch-size", "7"], environment: env)
            #expect(second.status == 0, "\(second.stderr)")
            #expect(try fixture.statusCounts(job: job) == ["sent": 57, "pending": 63])
            #expect(smtp.messageFiles.count == 57)
            #expect(try fixture.countersMatchItems(job: job))
        }
    }

    @Test func smallCompanyFinishesInTheSameTickAsBigCompanysFirstBatch() throws {
        try withMailSetup { fixture, _, env in
            let big = try fixture.emailJob(company: 10, count: 500)
            let small = try fixture.emailJob(company: 20, count: 20)
            let result = try runFanout(["emails:process-jobs"], environment: env)
            #expect(result.status == 0, "\(result.stderr)")
            #expect(try fixture.job(small).status == "completed")
            #expect(try fixture.statusCounts(job: small) == ["sent": 20])
            #expect(try fixture.statusCounts(job: big) == ["sent": 50, "pending": 450])
            #expect(try fixture.countersMatchItems(job: small))
        }
    }

    /// The rotation between companies lives in the database (`fanout_leases.served_at`): a tick
    /// that has time for only one company serves the one served longest ago, so three ticks
    /// serve three companies, and a company new to Fanout goes first.
    @Test func companiesTakeTurnsAcrossTicksThroughTheDatabase() throws {
        try withMailSetup(smtpArguments: ["--delay", "0.3"]) { fixture, _, env in
            // One connection, 4 messages of 0.3 s: a batch outlasts --max-time, so each tick
            // serves exactly one company.
            let arguments = ["emails:process-jobs", "--batch-size", "4", "--connections", "1", "--max-time", "1s"]
            let jobs = try [5, 6, 7].map { try fixture.emailJob(company: $0, count: 40) }
            var served: [UInt64] = []
            func tick() throws {
                let before = try jobs.map { try fixture.statusCounts(job: $0)["sent", default: 0] }
                let result = try runFanout(arguments, environment: env)
                #expect(result.status == 0, "\(result.stderr)")
                let after = try jobs.map { try fixture.statusCounts(job: $0)["sent", default: 0] }
                let moved = jobs.indices.filter { after[$0] > before[$0] }
                #expect(moved.count == 1, "one company a tick: \(before) -> \(after)")
                served.append(contentsOf: moved.map { UInt64(5 + $0) })
            }
            for _ in 0..<4 { try tick() }
            #expect(served == [5, 6, 7, 5])
            // A company that was never served goes before all that were.
            _ = try fixture.emailJob(company: 9, count: 4)
            let result = try runFanout(arguments, environment: env)
            #expect(result.status == 0, "\(result.stderr)")
            #expect(
                try fixture.db.queryFirst(
                    "SELECT company_id FROM fanout_leases WHERE kind = 'email' ORDER BY served_at DESC LIMIT 1")?
                    .decode("company_id", as: UInt64.self) == 9)
        }
    }

    @Test func oneJobPerCompanyAtATime() throws {
        try withMailSetup { fixture, _, env in
            let older = try fixture.emailJob(company: 5, count: 60)
            let newer = try fixture.emailJob(company: 5, count: 10)
            _ = try runFanout(["emails:process-jobs"], environment: env)
            #expect(try fixture.statusCounts(job: older) == ["sent": 50, "pending": 10])
            #expect(try fixture.statusCounts(job: newer) == ["pending": 10])
            #expect(try fixture.job(newer).status == "pending")
            _ = try runFanout(["emails:process-jobs"], environment: env)
            #expect(try fixture.job(older).status == "completed")
            #expect(try fixture.statusCounts(job: newer) == ["pending": 10])
            _ = try runFanout(["emails:process-jobs"], environment: env)
            #expect(try fixture.job(newer).status == "completed")
        }
    }

    @Test func eightTicksAtOnceDeliverEachItemExactlyOnce() throws {
        try withMailSetup { fixture, smtp, env in
            let job = try fixture.emailJob(company: 3, count: 300)
            let outputs = (0..<8).map {
                TestEnvironment.scratchDirectory.appendingPathComponent("overlap-\($0)-\(UUID().uuidString)")
            }
            let children = try outputs.map {
                try startFanout(
                    ["emails:process-jobs", "--batch-size", "100", "--until-done"], environment: env, output: $0)
            }
            for child in children { #expect(child.wait() == 0) }
            #expect(try fixture.statusCounts(job: job) == ["sent": 300])
            let recipients = smtp.deliveredRecipients
            #expect(recipients.count == 300)
            #expect(Set(recipients).count == 300)
            #expect(try fixture.job(job).status == "completed")
            #expect(try fixture.countersMatchItems(job: job))
        }
    }

    @Test func permanentAndTemporaryRejections() throws {
        try withMailSetup { fixture, smtp, env in
            let job = try fixture.emailJob(
                company: 1,
                recipients: [
                    ("reject550-a@example.test", "A", nil),
                    ("tempfail-once-b@example.test", "B", nil),
                    ("drop-in-data-once-c@example.test", "C", nil),
                    ("ok-d@example.test", "D", nil),
                ])
            let first = try runFanout(["emails:process-jobs", "--retry-backoff", "0s"], environment: env)
            #expect(first.status == 0, "\(first.stderr)")
            let items = try fixture.items(job: job)
            #expect(items[0].status == "failed")
            #expect(items[0].reason?.contains("550 5.1.1") == true)
            #expect(items[0].code == 550)
            #expect(items[1].status == "pending")
            #expect(items[1].reason?.contains("451") == true)
            #expect(items[1].attempts == 1)
            #expect(items[2].status == "pending")
            #expect(items[2].attempts == 1)
            #expect(items[3].status == "sent")
            let second = try runFanout(["emails:process-jobs", "--retry-backoff", "0s"], environment: env)
            #expect(second.status == 0, "\(second.stderr)")
            let after = try fixture.items(job: job)
            #expect(after.map(\.status) == ["failed", "sent", "sent", "sent"])
            #expect(after[1].attempts == 2)
            #expect(try fixture.job(job).status == "completed")
            #expect(try fixture.job(job).failed == 1)
            #expect(try fixture.countersMatchItems(job: job))
            #expect(
                Set(smtp.deliveredRecipients) == [
                    "tempfail-once-b@example.test", "drop-in-data-once-c@example.test", "ok-d@example.test",
                ])
        }
    }

    @Test func retryWaitsForItsTime() throws {
        try withMailSetup { fixture, _, env in
            let job = try fixture.emailJob(company: 1, recipients: [("tempfail-once-x@example.test", nil, nil)])
            _ = try runFanout(["emails:process-jobs"], environment: env)
            // Default backoff: a minute. The next tick must not try it yet.
            _ = try runFanout(["emails:process-jobs"], environment: env)
            let item = try #require(try fixture.items(job: job).first)
            #expect(item.status == "pending")
            #expect(item.attempts == 1)
            #expect(try fixture.job(job).status == "processing")
        }
    }

    @Test func invalidAddressesAndInjectionAttemptsNeverReachTheServer() throws {
        try withMailSetup { fixture, smtp, env in
            let job = try fixture.emailJob(
                company: 1,
                recipients: [
                    ("not-an-address", "X", nil),
                    ("a@b.test\r\nBcc: victim@example.test", "Y", nil),
                    ("victim2@example.test>\r\nRCPT TO:<evil@example.test", "Z", nil),
                    ("fine@example.test", "Name\r\nBcc: victim3@example.test", nil),
                    ("fine2@example.test", "Ok", #"{"code": "x\r\nBcc: victim4@example.test"}"#),
                ])
            let result = try runFanout(["emails:process-jobs"], environment: env)
            #expect(result.status == 0, "\(result.stderr)")
            let items = try fixture.items(job: job)
            #expect(items[0].status == "failed")
            #expect(items[0].reason?.lowercased().contains("address") == true)
            #expect(items[1].status == "failed")
            #expect(items[2].status == "failed")
            // The two good addresses are sent (the loop below then checks real messages).
            #expect(smtp.messageFiles.count == 2)
            for message in smtp.messageFiles {
                let text = try String(contentsOf: message, encoding: .utf8)
                let header = text.components(separatedBy: "\r\n\r\n").first ?? text
                // The name may still read "Bcc: …", but only inside the To line's quoted name.
                let lines = header.components(separatedBy: "\r\n")
                #expect(!lines.contains { $0.lowercased().hasPrefix("bcc") }, "\(header)")
                let names = lines.filter { !$0.hasPrefix(" ") }.map { $0.prefix { $0 != ":" } }
                #expect(
                    Set(names).isSubset(of: [
                        "Date", "From", "To", "Subject", "Message-ID", "MIME-Version", "Content-Type",
                        "Content-Transfer-Encoding", "Feedback-ID",
                    ]), "\(header)")
            }
            let recipients = smtp.deliveredRecipients
            #expect(!recipients.contains { $0.contains("victim") || $0.contains("evil") })
            #expect(try fixture.countersMatchItems(job: job))
        }
    }

    @Test func unknownOrBrokenTemplateFailsTheJobAndOthersGoOn() throws {
        try withMailSetup { fixture, smtp, env in
            let missing = try fixture.emailJob(company: 1, template: "no-such-template", count: 3)
            let broken = try fixture.emailJob(company: 2, template: "broken", count: 3)
            let good = try fixture.emailJob(company: 3, count: 3)
            let result = try runFanout(["emails:process-jobs"], environment: env)
            #expect(result.status == 0, "\(result.stderr)")
            let missingJob = try fixture.job(missing)
            #expect(missingJob.status == "failed")
            #expect(missingJob.reason?.contains("no-such-template") == true)
            #expect(try fixture.statusCounts(job: missing) == ["failed": 3])
            #expect(try fixture.job(broken).status == "failed")
            #expect(try fixture.job(broken).reason?.contains("broken") == true)
            #expect(try fixture.job(good).status == "completed")
            #expect(smtp.messageFiles.count == 3)
            #expect(try fixture.countersMatchItems(job: missing))
        }
    }

    @Test func smtpDownExits69AndChargesNothing() throws {
        try withTestDatabase { database, db in
            let fixture = try JobFixture(database: database, db: db)
            let job = try fixture.emailJob(company: 1, count: 5)
            var env = database.environment
            env["MAIL_HOST"] = "127.0.0.1"
            env["MAIL_PORT"] = "1"
            env["MAIL_FROM_ADDRESS"] = "sender@example.test"
            env["FANOUT_TEMPLATES"] = try makeTestTemplates().path
            let logFile = TestEnvironment.scratchDirectory.appendingPathComponent("fanout-69-\(UUID().uuidString).log")
            env["FANOUT_LOG_FILE"] = logFile.path
            let result = try runFanout(["emails:process-jobs"], environment: env)
            #expect(result.status == 69)
            #expect(result.stderr.split(separator: "\n").count == 1, "\(result.stderr)")
            #expect(result.stderr.hasPrefix("fanout: SMTP server 127.0.0.1:1 unavailable"))
            // Cron users read the log file: the exit line is there too.
            let logged = (try? String(contentsOf: logFile, encoding: .utf8)) ?? ""
            #expect(
                logged.contains("error fanout: SMTP server 127.0.0.1:1 unavailable") && logged.contains("exit=69"),
                "\(logged)")
            #expect(try fixture.statusCounts(job: job) == ["pending": 5])
            #expect(try fixture.items(job: job).allSatisfy { $0.attempts == 0 })
        }
    }

    /// A server that refuses every session (554 at the greeting) or hangs up before the first
    /// message: exit 69 with one line (the server's reply when it gave one), nothing charged.
    @Test(arguments: [("--refuse-greeting", "554"), ("--close-before-mail", "unavailable")])
    func serverRefusingEverySessionExits69AndChargesNothing(behaviour: String, said: String) throws {
        try withMailSetup(smtpArguments: [behaviour]) { fixture, _, env in
            let job = try fixture.emailJob(company: 1, count: 5)
            let result = try runFanout(["emails:process-jobs"], environment: env)
            #expect(result.status == 69, "\(result.stderr)")
            #expect(result.stderr.split(separator: "\n").count == 1, "\(result.stderr)")
            #expect(result.stderr.contains(said), "\(result.stderr)")
            #expect(try fixture.statusCounts(job: job) == ["pending": 5])
            #expect(try fixture.items(job: job).allSatisfy { $0.attempts == 0 })
        }
    }

    @Test func databaseDownExits69() throws {
        let env = [
            "DB_HOST": "127.0.0.1", "DB_PORT": "1", "DB_DATABASE": "x", "DB_USERNAME": "u",
            "MAIL_HOST": "127.0.0.1", "MAIL_FROM_ADDRESS": "sender@example.test",
        ]
        let result = try runFanout(["emails:process-jobs"], environment: env)
        #expect(result.status == 69)
        #expect(result.stderr.split(separator: "\n").count == 1)
    }

    @Test func missingMailSettingsExit78() throws {
        let logFile = TestEnvironment.scratchDirectory.appendingPathComponent("fanout-78-\(UUID().uuidString).log")
        let result = try runFanout(
            ["emails:process-jobs"],
            environment: ["DB_DATABASE": "x", "DB_USERNAME": "u", "FANOUT_LOG_FILE": logFile.path])
        #expect(result.status == 78)
        #expect(result.stderr.contains("MAIL_HOST"))
        let logged = (try? String(contentsOf: logFile, encoding: .utf8)) ?? ""
        #expect(
            logged.contains("MAIL_HOST") && logged.contains("exit=78"),
            "the exit line reaches FANOUT_LOG_FILE: \(logged)")
    }

    @Test func idleTickPrintsNothingAndExits0() throws {
        try withMailSetup { _, _, env in
            let result = try runFanout(["emails:process-jobs"], environment: env)
            #expect(result.status == 0)
            #expect(result.stdout.isEmpty)
            #expect(result.stderr.isEmpty)
        }
    }

    @Test func plainSQLCancelOfTheParentStopsDeliveryWithinHalfASecond() throws {
        try withMailSetup(smtpArguments: ["--delay", "0.05"]) { fixture, smtp, env in
            let job = try fixture.emailJob(company: 1, count: 400)
            let output = TestEnvironment.scratchDirectory.appendingPathComponent("cancel-\(UUID().uuidString)")
            let child = try startFanout(
                ["emails:process-jobs", "--batch-size", "400", "--connections", "2"], environment: env, output: output)
            #expect(waitUntil(seconds: 20) { smtp.messageFiles.count >= 10 })
            // Live from the first batch: the host's screen shows it running, with its counters.
            let live = try fixture.db.queryFirst(
                "SELECT status, started_at IS NOT NULL AS started, processed_items, "
                    + "last_processed_at IS NOT NULL AS moved FROM bulk_email_jobs WHERE id = ?",
                [job])
            #expect(try live?.decode("status", as: String.self) == "processing")
            #expect(try live?.decode("started", as: Int.self) == 1)
            #expect(try live?.decode("processed_items", as: Int.self) ?? 0 > 0)
            #expect(try live?.decode("moved", as: Int.self) == 1)
            try fixture.db.execute(
                "UPDATE bulk_email_jobs SET status = 'cancelled', reason = 'Stopped by the marketing team' "
                    + "WHERE id = ?",
                [job])
            let atCancel = smtp.messageFiles.count
            #expect(child.wait() == 0)
            // The server takes 0.05 s a message on each of 2 connections: half a second of
            // sending after the commit is at most ~20 messages, plus the 2 in flight. Counted,
            // not timed: a slow machine sends fewer, never more.
            let late = smtp.messageFiles.count - atCancel
            #expect(late <= 22, "\(late) messages arrived after the cancel")
            let counts = try fixture.statusCounts(job: job)
            #expect((counts["sent"] ?? 0) == smtp.messageFiles.count)
            #expect((counts["sent"] ?? 0) + (counts["cancelled"] ?? 0) == 400)
            #expect(counts["cancelled"] ?? 0 > 0)
            let cancelled = try fixture.items(job: job).filter { $0.status == "cancelled" }
            #expect(cancelled.allSatisfy { $0.reason == "Stopped by the marketing team" })
            let row = try fixture.job(job)
            #expect(row.status == "cancelled")
            #expect(row.reason == "Stopped by the marketing team")
            #expect(try fixture.countersMatchItems(job: job))
        }
    }

    /// The host cancels the parent, then flips every unfinished item to cancelled, as a Laravel
    /// app does, while a batch sends: items already delivered (in flight when the UPDATE ran)
    /// are recorded sent all the same, with the host's reason kept as a note; only undelivered
    /// items end cancelled, and the counters follow the items.
    @Test func aHostsBluntItemUpdateDoesNotEraseDeliveries() throws {
        try withMailSetup(smtpArguments: ["--delay", "0.05"]) { fixture, smtp, env in
            let job = try fixture.emailJob(company: 1, count: 300)
            let output = TestEnvironment.scratchDirectory.appendingPathComponent("blunt-\(UUID().uuidString)")
            let child = try startFanout(
                ["emails:process-jobs", "--batch-size", "300", "--connections", "4"], environment: env, output: output)
            #expect(waitUntil(seconds: 20) { smtp.messageFiles.count >= 12 })
            try fixture.db.execute(
                "UPDATE bulk_email_jobs SET status = 'cancelled', reason = 'Wrong list' WHERE id = ?", [job])
            let flipped = try fixture.db.execute(
                "UPDATE bulk_email_job_items SET status = 'cancelled', reason = 'Wrong list' "
                    + "WHERE bulk_email_job_id = ? AND status IN ('pending', 'processing')",
                [job]
            ).affectedRows
            #expect(flipped > 0)
            #expect(child.wait() == 0)
            let delivered = Set(smtp.deliveredRecipients)
            let items = try fixture.items(job: job)
            let sent = Set(items.filter { $0.status == "sent" }.map(\.email))
            #expect(sent == delivered, "every delivered message's item is sent, and only those")
            #expect(
                items.filter { $0.status != "sent" }.allSatisfy {
                    $0.status == "cancelled" && $0.reason == "Wrong list"
                })
            let notes = items.filter { $0.reason?.hasPrefix("Delivered before the cancel reached it") == true }
            #expect(
                notes.allSatisfy {
                    $0.status == "sent" && $0.reason == "Delivered before the cancel reached it (Wrong list)"
                })
            #expect(try fixture.job(job).status == "cancelled")
            #expect(try fixture.countersMatchItems(job: job))
        }
    }

    @Test func parentCancelledWhileNoTickRanEndsItsItems() throws {
        try withMailSetup { fixture, smtp, env in
            let job = try fixture.emailJob(company: 1, count: 30)
            try fixture.db.execute(
                "UPDATE bulk_email_jobs SET status = 'cancelled', reason = 'Wrong list' WHERE id = ?", [job])
            let result = try runFanout(["emails:process-jobs"], environment: env)
            #expect(result.status == 0, "\(result.stderr)")
            #expect(try fixture.statusCounts(job: job) == ["cancelled": 30])
            #expect(smtp.messageFiles.isEmpty)
            #expect(try fixture.countersMatchItems(job: job))
        }
    }

    /// kill -9 at several random moments, each tick taking over from the one killed before it:
    /// every outcome known to a killed tick was already written, so the duplicates are at most
    /// the transfers in flight (4 connections a kill), every duplicated item is in doubt, and
    /// only items that may have been handed over are (in flight plus the hand-over window).
    @Test func killedAtRandomMomentsDuplicatesOnlyWhatWasInFlight() throws {
        try withMailSetup(smtpArguments: ["--delay", "0.01"]) { fixture, smtp, env in
            let job = try fixture.emailJob(company: 1, count: 600)
            let kills = 4
            let tick = ["emails:process-jobs", "--batch-size", "600", "--connections", "4", "--stuck-after", "1s"]
            for round in 0..<kills {
                let output = TestEnvironment.scratchDirectory.appendingPathComponent(
                    "kill-\(round)-\(UUID().uuidString)")
                let before = smtp.messageFiles.count
                let child = try startFanout(tick, environment: env, output: output)
                let target = before + Int.random(in: 15...90)
                #expect(waitUntil(seconds: 30) { smtp.messageFiles.count >= target })
                child.signal(SIGKILL)
                child.wait()
                let processing = try fixture.statusCounts(job: job)["processing"] ?? 0
                #expect(processing > 0, "killed while sending")
                // The next tick takes the lease over once its heartbeat is older than 1 s.
                Thread.sleep(forTimeInterval: 1.3)
            }
            for _ in 0..<5 {
                let result = try runFanout(tick, environment: env)
                #expect(result.status == 0, "\(result.stderr)")
                if try fixture.job(job).status == "completed" { break }
            }
            #expect(try fixture.job(job).status == "completed")
            #expect(try fixture.statusCounts(job: job) == ["sent": 600])
            #expect(try fixture.countersMatchItems(job: job))
            let recipients = smtp.deliveredRecipients
            #expect(Set(recipients).count == 600)
            let duplicated = Set(Dictionary(grouping: recipients, by: { $0 }).filter { $0.value.count > 1 }.keys)
            #expect(recipients.count - 600 <= kills * 4, "at most the transfers in flight, 4 a kill")
            let items = try fixture.items(job: job)
            let doubted = Set(items.filter(\.inDoubt).map(\.email))
            #expect(duplicated.isSubset(of: doubted), "every item sent twice is flagged in doubt")
            #expect(doubted.count <= kills * (4 + 4), "in doubt: in flight plus the hand-over window (the connections)")
            // Claimed but never handed over: back to pending uncharged, so sent at the first attempt.
            #expect(items.filter { !$0.inDoubt }.allSatisfy { $0.attempts == 1 })
        }
    }

    /// A live tick whose every delivery hangs keeps its lease (it heartbeats) but makes no
    /// progress: the next tick expires the job after --inactive-after, with the items, and the
    /// hung tick writes nothing more (its writes are fenced by the lease it lost).
    @Test func aLiveHolderThatMakesNoProgressIsExpired() throws {
        // Each message takes the server 10 s: the holder hangs on its first transfers long past the
        // 2 s of --inactive-after below, and they end (late) while the test still watches.
        try withMailSetup(smtpArguments: ["--delay", "10"]) { fixture, smtp, env in
            let job = try fixture.emailJob(company: 1, count: 6)
            let output = TestEnvironment.scratchDirectory.appendingPathComponent("hung-\(UUID().uuidString)")
            let hung = try startFanout(["emails:process-jobs", "--connections", "2"], environment: env, output: output)
            defer { if hung.isRunning { hung.signal(SIGKILL); hung.wait() } }
            #expect(waitUntil(seconds: 20) { ((try? fixture.statusCounts(job: job)["processing"]) ?? 0) > 0 })
            // Before --inactive-after has passed, the holder is left alone.
            let early = try runFanout(["emails:process-jobs", "--inactive-after", "30m"], environment: env)
            #expect(early.status == 0, "\(early.stderr)")
            #expect(try fixture.job(job).status == "processing")
            Thread.sleep(forTimeInterval: 2.5)
            let expiring = try runFanout(["emails:process-jobs", "--inactive-after", "2s"], environment: env)
            #expect(expiring.status == 0, "\(expiring.stderr)")
            let row = try fixture.job(job)
            #expect(row.status == "failed")
            #expect(row.reason?.contains("no progress for 2s") == true, "\(row.reason ?? "")")
            #expect(try fixture.items(job: job).allSatisfy { $0.status == "failed" && $0.reason == row.reason })
            #expect(try fixture.countersMatchItems(job: job))
            let snapshot = try fixture.snapshot(job: job)
            // The hung tick sees its lease gone with its next write (within 250 ms): when its
            // transfers finally end, it records none of them and starts nothing new.
            #expect(waitUntil(seconds: 40) { !hung.isRunning })
            #expect(try fixture.snapshot(job: job) == snapshot)
            #expect(smtp.messageFiles.count <= 2, "only the transfers in flight (2 connections) reached the server")
        }
    }

    /// A tick whose database connection breaks mid-batch (killed on the server here; a node lost
    /// behind a proxy alike) exits 69 and hands its company on at once: the next tick takes the
    /// job over without waiting --stuck-after (10 minutes), and every duplicate is an in-doubt item.
    @Test func tickWhoseConnectionBreaksHandsItsCompanyOnAtOnce() throws {
        try withMailSetup(smtpArguments: ["--delay", "0.05"]) { fixture, smtp, env in
            let job = try fixture.emailJob(company: 1, count: 200)
            let output = TestEnvironment.scratchDirectory.appendingPathComponent("killed-\(UUID().uuidString)")
            let tick = try startFanout(
                ["emails:process-jobs", "--batch-size", "200"], environment: env, output: output)
            #expect(waitUntil(seconds: 30) { smtp.messageFiles.count >= 10 })
            let mine = try fixture.db.queryFirst("SELECT CONNECTION_ID() AS id")!.decode("id", as: UInt64.self)
            let theirs = try fixture.db.query(
                "SELECT ID FROM information_schema.PROCESSLIST WHERE DB = ? AND ID <> ?", [fixture.database.name, mine]
            ).map { try $0.decode("ID", as: UInt64.self) }
            #expect(theirs.count == 1, "the tick's one connection: \(theirs)")
            for id in theirs { try fixture.db.execute("KILL CONNECTION \(id)") }
            #expect(tick.wait() == 69)
            let held = try fixture.db.queryFirst("SELECT COUNT(*) AS n FROM fanout_leases WHERE heartbeat_at IS NULL")
            #expect(try held?.decode("n", as: Int.self) == 1, "handed on, not held for --stuck-after")
            for _ in 0..<3 {
                let next = try runFanout(["emails:process-jobs", "--batch-size", "200"], environment: env)
                #expect(next.status == 0, "\(next.stderr)")
                if try fixture.job(job).status == "completed" { break }
            }
            #expect(try fixture.statusCounts(job: job) == ["sent": 200])
            let inDoubt = try fixture.items(job: job).filter(\.inDoubt).count
            #expect(smtp.messageFiles.count - 200 <= inDoubt, "every duplicate is an in-doubt item")
            #expect(try fixture.countersMatchItems(job: job))
        }
    }

    @Test func stoppedTickTakenOverAndResumedChangesNoRow() throws {
        try withMailSetup(smtpArguments: ["--delay", "0.02"]) { fixture, smtp, env in
            let job = try fixture.emailJob(company: 1, count: 200)
            let output = TestEnvironment.scratchDirectory.appendingPathComponent("stop-\(UUID().uuidString)")
            let stopped = try startFanout(
                ["emails:process-jobs", "--batch-size", "200"], environment: env, output: output)
            #expect(waitUntil(seconds: 20) { smtp.messageFiles.count >= 20 })
            let rows = try fixture.stopTakeOverResume(job: job, paused: stopped) {
                let result = try runFanout(
                    ["emails:process-jobs", "--batch-size", "200", "--stuck-after", "2s"], environment: env)
                #expect(result.status == 0, "\(result.stderr)")
            }
            #expect(try fixture.job(job).status == "completed")
            #expect(rows.resumedStatus != 0)
            #expect(rows.afterResume == rows.afterTakeover)
            #expect(try fixture.countersMatchItems(job: job))
        }
    }

    @Test func inactiveJobExpiresOnlyWhileALiveHolderMakesNoProgress() throws {
        try withMailSetup { fixture, _, env in
            // Company 1: a live tick (fresh heartbeat) has held the lease for an hour without the
            // job moving (every delivery hangs): expired.
            let stalled = try fixture.emailJob(company: 1, count: 5, status: "processing")
            // Company 2: stalled as long, but its live holder took the lease a minute ago (cron
            // was stopped before): the job's old idleness is not held against it.
            let resumed = try fixture.emailJob(company: 2, count: 5, status: "processing")
            for job in [stalled, resumed] {
                try fixture.db.execute(
                    "UPDATE bulk_email_jobs SET started_at = NOW() - INTERVAL 2 HOUR, "
                        + "last_processed_at = NOW() - INTERVAL 1 HOUR WHERE id = ?",
                    [job])
            }
            try fixture.db.execute(
                "INSERT INTO fanout_leases (kind, company_id, owner, acquired_at, heartbeat_at) "
                    + "VALUES ('email', 1, 'hung', NOW(6) - INTERVAL 1 HOUR, NOW(6))"
            )
            try fixture.db.execute(
                "INSERT INTO fanout_leases (kind, company_id, owner, acquired_at, heartbeat_at) "
                    + "VALUES ('email', 2, 'fresh', NOW(6) - INTERVAL 1 MINUTE, NOW(6))"
            )
            let result = try runFanout(["emails:process-jobs", "--inactive-after", "30m"], environment: env)
            #expect(result.status == 0, "\(result.stderr)")
            #expect(try fixture.job(resumed).status == "processing")
            #expect(try fixture.statusCounts(job: resumed) == ["pending": 5])
            let expired = try fixture.job(stalled)
            #expect(expired.status == "failed")
            #expect(expired.reason?.contains("no progress") == true)
            #expect(try fixture.statusCounts(job: stalled) == ["failed": 5])
            #expect(try fixture.items(job: stalled).allSatisfy { $0.reason == expired.reason })
            #expect(try fixture.countersMatchItems(job: stalled))
        }
    }

    @Test func jobNotExpiredWhenFanoutWasNotRunning() throws {
        try withMailSetup { fixture, _, env in
            let job = try fixture.emailJob(company: 2, count: 5, status: "processing")
            try fixture.db.execute(
                "UPDATE bulk_email_jobs SET started_at = NOW() - INTERVAL 2 HOUR, "
                    + "last_processed_at = NOW() - INTERVAL 1 HOUR WHERE id = ?",
                [job])
            let result = try runFanout(["emails:process-jobs", "--inactive-after", "30m"], environment: env)
            #expect(result.status == 0, "\(result.stderr)")
            #expect(try fixture.job(job).status == "completed")
        }
    }

    @Test func jobWaitingBehindAnotherIsNotExpired() throws {
        try withMailSetup { fixture, _, env in
            let head = try fixture.emailJob(company: 4, count: 60)
            let waiting = try fixture.emailJob(company: 4, count: 5)
            try fixture.db.execute(
                "UPDATE bulk_email_jobs SET created_at = NOW() - INTERVAL 3 HOUR WHERE id = ?", [waiting])
            try fixture.db.execute(
                "INSERT INTO fanout_ticks (kind, owner, host, pid, started_at, finished_at) "
                    + "SELECT 'email', 'old', 'h', 1, NOW(6) - INTERVAL seq MINUTE, "
                    + "NOW(6) - INTERVAL seq MINUTE FROM seq_1_to_170"
            )
            _ = try runFanout(["emails:process-jobs", "--inactive-after", "30m"], environment: env)
            #expect(try fixture.job(waiting).status == "pending")
            _ = try runFanout(["emails:process-jobs", "--inactive-after", "30m"], environment: env)
            #expect(try fixture.job(head).status == "completed")
            _ = try runFanout(["emails:process-jobs", "--inactive-after", "30m"], environment: env)
            #expect(try fixture.job(waiting).status == "completed")
        }
    }

    @Test func jobWaitingOnlyForRetriesIsNotExpired() throws {
        try withMailSetup { fixture, _, env in
            let job = try fixture.emailJob(
                company: 6, recipients: [("retry@example.test", nil, nil)], status: "processing")
            try fixture.db.execute(
                "UPDATE bulk_email_jobs SET started_at = NOW() - INTERVAL 2 HOUR, "
                    + "last_processed_at = NOW() - INTERVAL 1 HOUR WHERE id = ?",
                [job])
            try fixture.db.execute(
                "UPDATE bulk_email_job_items SET attempts = 1, next_attempt_at = NOW() + INTERVAL 1 HOUR "
                    + "WHERE bulk_email_job_id = ?",
                [job])
            try fixture.db.execute(
                "INSERT INTO fanout_ticks (kind, owner, host, pid, started_at, finished_at) "
                    + "SELECT 'email', 'old', 'h', 1, NOW(6) - INTERVAL seq MINUTE, "
                    + "NOW(6) - INTERVAL seq MINUTE FROM seq_1_to_59"
            )
            let result = try runFanout(["emails:process-jobs", "--inactive-after", "30m"], environment: env)
            #expect(result.status == 0, "\(result.stderr)")
            #expect(try fixture.job(job).status == "processing")
            #expect(try fixture.statusCounts(job: job) == ["pending": 1])
        }
    }

    @Test func jsonLogLinesAndTheLogFile() throws {
        try withMailSetup { fixture, _, env in
            let job = try fixture.emailJob(company: 1, count: 3)
            let logFile = TestEnvironment.scratchDirectory.appendingPathComponent("fanout-\(UUID().uuidString).log")
            var withFile = env
            withFile["FANOUT_LOG_FILE"] = logFile.path
            let result = try runFanout(["emails:process-jobs", "--log-format", "json"], environment: withFile)
            #expect(result.status == 0, "\(result.stderr)")
            let lines = result.stderr.split(separator: "\n")
            #expect(!lines.isEmpty)
            for line in lines {
                let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
                #expect(object?["level"] != nil)
                #expect(object?["message"] != nil)
            }
            let summary = try #require(
                lines.compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }.first {
                    $0["message"] as? String == "tick done"
                })
            #expect(summary["items.delivered"] as? String == "3")
            let file = try String(contentsOf: logFile, encoding: .utf8)
            #expect(file.split(separator: "\n") == lines)
            // A second tick appends.
            _ = try fixture.emailJob(company: 2, count: 1)
            _ = try runFanout(["emails:process-jobs", "--log-format", "json"], environment: withFile)
            #expect(try String(contentsOf: logFile, encoding: .utf8).split(separator: "\n").count > lines.count)
            #expect(try fixture.job(job).status == "completed")
        }
    }

    @Test func verboseIdleTickSaysSo() throws {
        try withMailSetup { _, _, env in
            let result = try runFanout(["emails:process-jobs", "-v"], environment: env)
            #expect(result.status == 0)
            #expect(result.stderr.contains("idle"))
        }
    }
}

/// STARTTLS and AUTH against the shared smtp-auth server (self-signed certificate).
@Suite(.enabled(if: TestEnvironment.hasDatabase && TestEnvironment.hasServers))
struct EmailTickTLSTests {
    func environment(_ fixture: JobFixture, password: String, caFile: String?) throws -> [String: String] {
        var env = fixture.database.environment
        env["MAIL_HOST"] = "localhost"
        env["MAIL_PORT"] = String(TestEnvironment.smtpAuthPort)
        env["MAIL_ENCRYPTION"] = "tls"
        env["MAIL_USERNAME"] = "fanout"
        env["MAIL_PASSWORD"] = password
        env["MAIL_FROM_ADDRESS"] = "sender@example.test"
        env["FANOUT_TEMPLATES"] = try makeTestTemplates().path
        if let caFile { env["FANOUT_SMTP_CA_FILE"] = caFile }
        return env
    }

    @Test func startTLSWithAuthDelivers() throws {
        try withTestDatabase { database, db in
            let fixture = try JobFixture(database: database, db: db)
            let job = try fixture.emailJob(company: 1, count: 3)
            let result = try runFanout(
                ["emails:process-jobs"],
                environment: try environment(fixture, password: "smtp-secret", caFile: TestEnvironment.tlsCertificate))
            #expect(result.status == 0, "\(result.stderr)")
            #expect(try fixture.statusCounts(job: job) == ["sent": 3])
        }
    }

    @Test func refusedAuthExits69WithoutThePasswordAndChargesNothing() throws {
        try withTestDatabase { database, db in
            let fixture = try JobFixture(database: database, db: db)
            let job = try fixture.emailJob(company: 1, count: 3)
            let result = try runFanout(
                ["emails:process-jobs"],
                environment: try environment(
                    fixture, password: "wrong-smtp-pw-77", caFile: TestEnvironment.tlsCertificate))
            #expect(result.status == 69)
            #expect(result.stderr.contains("535"))
            #expect(!result.stderr.contains("wrong-smtp-pw-77"))
            #expect(try fixture.statusCounts(job: job) == ["pending": 3])
            #expect(try fixture.items(job: job).allSatisfy { $0.attempts == 0 })
        }
    }

    @Test func untrustedCertificateExits69() throws {
        try withTestDatabase { database, db in
            let fixture = try JobFixture(database: database, db: db)
            let job = try fixture.emailJob(company: 1, count: 2)
            let result = try runFanout(
                ["emails:process-jobs"], environment: try environment(fixture, password: "smtp-secret", caFile: nil))
            #expect(result.status == 69)
            #expect(try fixture.statusCounts(job: job) == ["pending": 2])
        }
    }
}
