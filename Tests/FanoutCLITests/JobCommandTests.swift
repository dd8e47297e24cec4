import Foundation
import MariaDB
import Testing
import TestSupport

/// `fanout cancel`, `retry` and `jobs` against the real MariaDB (and SMTP server where a tick runs).
@Suite(.enabled(if: TestEnvironment.hasDatabase && TestEnvironment.canStartServers))
struct JobCommandTests {
    func withSetup(_ body: (JobFixture, TestServer, [String: String]) throws -> Void) throws {
        try withTestDatabase { database, db in
            let fixture = try JobFixture(database: database, db: db)
            let smtp = try TestServer.smtp()
            try body(fixture, smtp, EmailTickTests.environment(fixture, smtp, try makeTestTemplates()))
        }
    }

    @Test func cancelEndsPendingItemsWithTheReasonAndTheTickClosesTheJob() throws {
        try withSetup { fixture, smtp, env in
            let job = try fixture.emailJob(company: 1, count: 80)
            _ = try runFanout(["emails:process-jobs"], environment: env)
            let result = try runFanout(
                ["cancel", "email", String(job), "--reason", "Wrong audience"], environment: env)
            #expect(result.status == 0, "\(result.stderr)")
            #expect(result.stdout.contains("30 pending items cancelled"))
            #expect(try fixture.statusCounts(job: job) == ["sent": 50, "cancelled": 30])
            #expect(
                try fixture.items(job: job).filter { $0.status == "cancelled" }.allSatisfy {
                    $0.reason == "Wrong audience"
                })
            #expect(try fixture.job(job).status == "cancelled")
            #expect(try fixture.job(job).reason == "Wrong audience")
            _ = try runFanout(["emails:process-jobs"], environment: env)
            #expect(smtp.messageFiles.count == 50)
            #expect(try fixture.countersMatchItems(job: job))
        }
    }

    /// Retry and cancel of a job larger than one chunk (5,000 rows a statement) reach every
    /// item, and so does a tick ending a job cancelled by plain SQL.
    @Test func largeRetryAndCancelGoInChunksAndReachEveryItem() throws {
        try withSetup { fixture, smtp, env in
            let count = 12_001
            let job = try fixture.emailJob(company: 1, count: 0)
            try fixture.db.execute(
                """
                INSERT INTO bulk_email_job_items (bulk_email_job_id, email, status, reason, attempts, processed_at)
                SELECT ?, CONCAT('r', seq, '@example.test'), 'failed', '550 no', 1, NOW() FROM seq_1_to_\(count)
                """, [job])
            try fixture.db.execute(
                "UPDATE bulk_email_jobs SET status = 'completed', completed_at = NOW(), total_items = ?, "
                    + "processed_items = ?, failed_items = ? WHERE id = ?",
                [count, count, count, job])
            let retry = try runFanout(["retry", "email", String(job)], environment: env)
            #expect(retry.status == 0, "\(retry.stderr)")
            #expect(try fixture.statusCounts(job: job) == ["pending": count])
            #expect(try fixture.job(job).status == "processing")
            #expect(try fixture.countersMatchItems(job: job))
            let cancel = try runFanout(["cancel", "email", String(job), "--reason", "Too many"], environment: env)
            #expect(cancel.status == 0, "\(cancel.stderr)")
            #expect(try fixture.statusCounts(job: job) == ["cancelled": count])
            #expect(try fixture.countersMatchItems(job: job))

            let other = try fixture.emailJob(company: 2, count: count)
            try fixture.db.execute(
                "UPDATE bulk_email_jobs SET status = 'cancelled', reason = 'By SQL' WHERE id = ?", [other])
            #expect(try runFanout(["emails:process-jobs"], environment: env).status == 0)
            #expect(try fixture.statusCounts(job: other) == ["cancelled": count])
            #expect(try fixture.countersMatchItems(job: other))
            #expect(smtp.messageFiles.isEmpty)
        }
    }

    @Test func cancelRefusesUnknownAndFinishedJobs() throws {
        try withSetup { fixture, _, env in
            let unknown = try runFanout(["cancel", "email", "999999"], environment: env)
            #expect(unknown.status == 1)
            #expect(unknown.stderr == "fanout: no email job 999999\n")
            let job = try fixture.emailJob(company: 1, count: 2)
            _ = try runFanout(["emails:process-jobs"], environment: env)
            let done = try runFanout(["cancel", "email", String(job)], environment: env)
            #expect(done.status == 1)
            #expect(done.stderr.contains("already completed"))
            let badKind = try runFanout(["cancel", "sms", "1"], environment: env)
            #expect(badKind.status == 64)
        }
    }

    @Test func cancelWhileATickDeliversStopsIt() throws {
        try withTestDatabase { database, db in
            let fixture = try JobFixture(database: database, db: db)
            let smtp = try TestServer.smtp(["--delay", "0.05"])
            let env = EmailTickTests.environment(fixture, smtp, try makeTestTemplates())
            let job = try fixture.emailJob(company: 1, count: 300)
            let output = TestEnvironment.scratchDirectory.appendingPathComponent("cancel-cli-\(UUID().uuidString)")
            let tick = try startFanout(
                ["emails:process-jobs", "--batch-size", "300", "--connections", "2"], environment: env, output: output)
            #expect(waitUntil(seconds: 20) { smtp.messageFiles.count >= 10 })
            let result = try runFanout(["cancel", "email", String(job), "--reason", "Stop now"], environment: env)
            #expect(result.status == 0, "\(result.stderr)")
            #expect(tick.wait() == 0)
            let counts = try fixture.statusCounts(job: job)
            #expect(counts["pending"] == nil && counts["processing"] == nil)
            #expect((counts["sent"] ?? 0) == smtp.messageFiles.count)
            #expect((counts["sent"] ?? 0) < 300)
            #expect(try fixture.job(job).status == "cancelled")
            #expect(try fixture.countersMatchItems(job: job))
        }
    }

    @Test func retryPutsFailedItemsBack() throws {
        try withSetup { fixture, _, env in
            let job = try fixture.emailJob(
                company: 1,
                recipients: [
                    ("ok@example.test", nil, nil), ("not-an-address", nil, nil), ("also bad", nil, nil),
                ])
            _ = try runFanout(["emails:process-jobs"], environment: env)
            #expect(try fixture.job(job).status == "completed")
            #expect(try fixture.job(job).failed == 2)
            let bad = try fixture.items(job: job)[1]
            let one = try runFanout(["retry", "email", String(job), "--item", String(bad.id)], environment: env)
            #expect(one.status == 0, "\(one.stderr)")
            #expect(one.stdout.contains("1 failed item"))
            let items = try fixture.items(job: job)
            #expect(items[1].status == "pending")
            #expect(items[1].attempts == bad.attempts)
            #expect(items[2].status == "failed")
            #expect(try fixture.job(job).status == "processing")
            #expect(try fixture.countersMatchItems(job: job))
            let all = try runFanout(["retry", "email", String(job)], environment: env)
            #expect(all.status == 0)
            #expect(try fixture.statusCounts(job: job) == ["sent": 1, "pending": 2])
            let none = try runFanout(["retry", "email", "424242"], environment: env)
            #expect(none.status == 1)
            #expect(none.stderr.contains("no email job 424242"))
        }
    }

    @Test func jobsListsWithFiltersAsTableAndJSON() throws {
        try withSetup { fixture, _, env in
            let first = try fixture.emailJob(company: 7, count: 60)
            let second = try fixture.emailJob(company: 8, count: 3)
            _ = try runFanout(["emails:process-jobs"], environment: env)
            let table = try runFanout(["jobs", "email"], environment: env)
            #expect(table.status == 0, "\(table.stderr)")
            #expect(table.stdout.hasPrefix("KIND"))
            #expect(table.stdout.contains("50/60"))
            #expect(table.stdout.contains("[########··] 83%"))
            let filtered = try runFanout(["jobs", "--company", "8", "--format", "json"], environment: env)
            #expect(filtered.status == 0, "\(filtered.stderr)")
            let objects = try #require(
                try JSONSerialization.jsonObject(with: Data(filtered.stdout.utf8)) as? [[String: Any]])
            #expect(objects.count == 1)
            #expect(objects.first?["id"] as? Int == Int(second))
            #expect(objects.first?["status"] as? String == "completed")
            let none = try runFanout(["jobs", "wallet", "--status", "failed"], environment: env)
            #expect(none.stdout.contains("No jobs"))
            let bad = try runFanout(["jobs", "--status", "bogus"], environment: env)
            #expect(bad.status == 64)
            _ = first
        }
    }

    /// `fanout jobs` says what holds a job up: an SMTP outage met after its last progress (with
    /// since when), or an earlier job of its company; neither once it moves again.
    @Test func jobsSayWhatHoldsAJobUp() throws {
        try withSetup { fixture, _, env in
            let first = try fixture.emailJob(company: 7, count: 60)
            let second = try fixture.emailJob(company: 7, count: 5)
            var down = env
            down["MAIL_PORT"] = "1"
            // Job times have whole seconds: the outage is met in a later second than the insert.
            Thread.sleep(forTimeInterval: 1.1)
            let failed = try runFanout(["emails:process-jobs"], environment: down)
            #expect(failed.status == 69)
            let table = try runFanout(["jobs", "email"], environment: env)
            let rows = table.stdout.split(separator: "\n")
            let firstRow = rows.first { $0.hasPrefix("email  \(first) ") } ?? ""
            #expect(firstRow.contains("waiting: SMTP server 127.0.0.1:1 unavailable since"), "\(table.stdout)")
            let json = try runFanout(["jobs", "email", "--format", "json"], environment: env)
            let objects = try #require(
                try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [[String: Any]])
            let waiting = objects.first { $0["id"] as? Int == Int(first) }?["waiting"] as? String
            #expect(waiting?.hasPrefix("waiting: SMTP server 127.0.0.1:1 unavailable: ") == true, "\(json.stdout)")
            // The second waits for the first whatever the server does (one job per company).
            let secondRow = rows.first { $0.hasPrefix("email  \(second) ") } ?? ""
            #expect(secondRow.contains("waiting behind job \(first)"), "\(table.stdout)")
            // The server is back: the first moves, and no longer says it waits.
            #expect(try runFanout(["emails:process-jobs"], environment: env).status == 0)
            let after = try runFanout(["jobs", "email"], environment: env).stdout.split(separator: "\n")
            #expect(after.first { $0.hasPrefix("email  \(first) ") }?.contains("waiting") == false)
            #expect(after.first { $0.hasPrefix("email  \(second) ") }?.contains("waiting behind job \(first)") == true)
        }
    }
}
