import Foundation
import MariaDB
import Testing
import TestSupport

/// One tick over many small companies (a platform's database: many teams sending a few cards or
/// mails each), run as cron runs it: the crash, cancel and fairness rules hold with many
/// companies served in the same tick.
@Suite(.enabled(if: TestEnvironment.hasDatabase && TestEnvironment.canStartServers))
struct ManyCompaniesTests {
    /// Every company gets one batch per tick, in turn: a tick over 30 companies of 20 items with
    /// batches of 10 leaves each of them exactly half done, not the first ones finished.
    @Test func oneTickGivesEveryCompanyOneBatch() throws {
        try withMailSetup { fixture, smtp, env in
            let jobs = try (1...30).map { try fixture.emailJob(company: UInt64(1000 + $0), count: 20) }
            let result = try runFanout(["emails:process-jobs", "--batch-size", "10"], environment: env)
            #expect(result.status == 0, "\(result.stderr)")
            for job in jobs {
                #expect(try fixture.statusCounts(job: job) == ["sent": 10, "pending": 10])
                #expect(try fixture.job(job).status == "processing")
                #expect(try fixture.countersMatchItems(job: job))
            }
            #expect(smtp.messageFiles.count == 300)
            #expect(
                try fixture.db.queryFirst("SELECT COUNT(*) AS n FROM fanout_leases WHERE owner IS NOT NULL")?
                    .decode("n", as: Int.self) == 0, "every lease given back")
        }
    }

    /// kill -9 at random moments of ticks that serve 60 companies of 10 items each, each tick
    /// taking over from the one killed before it: every item ends sent, the duplicates are at most
    /// the transfers in flight (4 a kill) and all flagged in doubt, and nothing else is in doubt
    /// but what may have been handed over.
    @Test func killedAtRandomMomentsAcrossManyCompaniesDuplicatesOnlyWhatWasInFlight() throws {
        try withMailSetup(smtpArguments: ["--delay", "0.01"]) { fixture, smtp, env in
            let jobs = try (1...60).map { try fixture.emailJob(company: UInt64(2000 + $0), count: 10) }
            let kills = 3
            let tick = [
                "emails:process-jobs", "--batch-size", "10", "--connections", "4", "--stuck-after", "1s",
                "--max-time", "5m",
            ]
            for round in 0..<kills {
                let output = TestEnvironment.scratchDirectory.appendingPathComponent(
                    "many-kill-\(round)-\(UUID().uuidString)")
                let before = smtp.messageFiles.count
                let child = try startFanout(tick, environment: env, output: output)
                let target = before + Int.random(in: 25...120)
                #expect(waitUntil(seconds: 30) { smtp.messageFiles.count >= target })
                child.signal(SIGKILL)
                child.wait()
                Thread.sleep(forTimeInterval: 1.3)
            }
            for _ in 0..<5 {
                let result = try runFanout(tick, environment: env)
                #expect(result.status == 0, "\(result.stderr)")
                if try jobs.allSatisfy({ try fixture.job($0).status == "completed" }) { break }
            }
            var items: [JobFixture.Item] = []
            for job in jobs {
                #expect(try fixture.job(job).status == "completed")
                #expect(try fixture.statusCounts(job: job) == ["sent": 10])
                #expect(try fixture.countersMatchItems(job: job))
                items += try fixture.items(job: job)
            }
            let recipients = smtp.deliveredRecipients
            #expect(Set(recipients) == Set(items.map(\.email)), "every item reached the server")
            let duplicated = Set(Dictionary(grouping: recipients, by: { $0 }).filter { $0.value.count > 1 }.keys)
            #expect(recipients.count - items.count <= kills * 4, "at most the transfers in flight, 4 a kill")
            let doubted = Set(items.filter(\.inDoubt).map(\.email))
            #expect(duplicated.isSubset(of: doubted), "every item sent twice is flagged in doubt")
            #expect(doubted.count <= kills * (4 + 4), "in doubt: in flight plus the hand-over window")
            #expect(items.filter { !$0.inDoubt }.allSatisfy { $0.attempts == 1 })
            // The live ticks gave back every lease they took. A killed tick's lease stays only
            // where it died between its last job's end and the lease's release: that company has
            // no work left, and its next job's tick takes the lease over 30 s after it died.
            let kept = try fixture.db.query(
                "SELECT l.company_id FROM fanout_leases l WHERE l.owner IS NOT NULL AND EXISTS "
                    + "(SELECT 1 FROM bulk_email_jobs j WHERE j.company_id = l.company_id AND j.status <> 'completed')")
            #expect(kept.isEmpty, "no company with work is left locked")
            #expect(
                try fixture.db.queryFirst("SELECT COUNT(*) AS n FROM fanout_leases WHERE owner IS NOT NULL")?
                    .decode("n", as: Int.self) ?? 0 <= kills, "at most one company a kill")
        }
    }

    /// A host cancels by plain SQL, while one tick serves 40 companies, the jobs of ten of them:
    /// one being sent, the others not reached yet. The tick goes on with the other companies;
    /// the cancelled jobs end cancelled with the host's reason, nothing of theirs is sent after
    /// the cancel but what was in flight, and every other job completes.
    @Test func plainSQLCancelOfSomeCompaniesMidTickStopsOnlyThem() throws {
        try withMailSetup(smtpArguments: ["--delay", "0.02"]) { fixture, smtp, env in
            let jobs = try (1...40).map { try fixture.emailJob(company: UInt64(3000 + $0), count: 10) }
            let output = TestEnvironment.scratchDirectory.appendingPathComponent("many-cancel-\(UUID().uuidString)")
            let child = try startFanout(
                ["emails:process-jobs", "--batch-size", "10", "--connections", "2", "--max-time", "5m"],
                environment: env, output: output)
            // Wait until a job is being sent (its batch claimed, some of it still in flight).
            var sending: UInt64?
            #expect(
                waitUntil(seconds: 30) {
                    sending = try? fixture.db.queryFirst(
                        "SELECT bulk_email_job_id AS job FROM bulk_email_job_items WHERE status = 'processing' LIMIT 1"
                    )?.decode("job", as: UInt64.self)
                    return sending != nil
                })
            let untouched = try jobs.filter { try fixture.statusCounts(job: $0) == ["pending": 10] }
            let cancelled = [sending].compactMap { $0 } + untouched.suffix(9)
            #expect(cancelled.count == 10)
            let sentBefore = try cancelled.map { try fixture.statusCounts(job: $0)["sent"] ?? 0 }.reduce(0, +)
            try fixture.db.execute(
                "UPDATE bulk_email_jobs SET status = 'cancelled', reason = 'Team left the platform' WHERE id IN ("
                    + cancelled.map(String.init).joined(separator: ",") + ")")
            #expect(child.wait() == 0)
            for job in jobs {
                let row = try fixture.job(job)
                let counts = try fixture.statusCounts(job: job)
                if cancelled.contains(job) {
                    #expect(row.status == "cancelled")
                    #expect(row.reason == "Team left the platform")
                    #expect(counts["pending"] == nil && counts["processing"] == nil, "\(counts)")
                    let ended = try fixture.items(job: job).filter { $0.status == "cancelled" }
                    #expect(ended.allSatisfy { $0.reason == "Team left the platform" })
                } else {
                    #expect(row.status == "completed", "job \(job): \(counts)")
                    #expect(counts == ["sent": 10])
                }
                #expect(try fixture.countersMatchItems(job: job))
            }
            // At most the job in flight's 2 transfers (2 connections) went out after the cancel.
            let sentAfter = try cancelled.map { try fixture.statusCounts(job: $0)["sent"] ?? 0 }.reduce(0, +)
            #expect(sentAfter - sentBefore <= 2, "\(sentAfter - sentBefore) sent after the cancel")
            let recipients = Set(smtp.deliveredRecipients)
            for job in cancelled {
                for item in try fixture.items(job: job) {
                    #expect(recipients.contains(item.email) == (item.status == "sent"), "\(item.email) \(item.status)")
                }
            }
        }
    }

    /// The SMTP server goes away while a tick serves 30 companies, with the next company's
    /// batch already begun: the tick exits 69, nothing is left in flight or charged, every lease
    /// is given back, and the next ticks (a server back) send every item, none twice but the
    /// transfers the server was cut off in.
    @Test func theServerGoingAwayMidTickLeavesNothingInFlight() throws {
        try withMailSetup(smtpArguments: ["--delay", "0.02"]) { fixture, smtp, env in
            let jobs = try (1...30).map { try fixture.emailJob(company: UInt64(4000 + $0), count: 10) }
            let output = TestEnvironment.scratchDirectory.appendingPathComponent("many-gone-\(UUID().uuidString)")
            let child = try startFanout(
                ["emails:process-jobs", "--batch-size", "10", "--connections", "2", "--max-time", "5m"],
                environment: env, output: output)
            #expect(waitUntil(seconds: 30) { smtp.messageFiles.count >= 25 })
            let first = Set(smtp.deliveredRecipients)
            smtp.stop()
            #expect(child.wait() == 69)
            let deliveredFirst = Set(smtp.deliveredRecipients)
            #expect(deliveredFirst.count >= first.count)
            var items: [JobFixture.Item] = []
            for job in jobs { items += try fixture.items(job: job) }
            #expect(items.allSatisfy { $0.status == "sent" || $0.status == "pending" }, "nothing left in flight")
            #expect(Set(items.filter { $0.status == "sent" }.map(\.email)).isSubset(of: deliveredFirst))
            // Only the transfers the server was cut off in are charged (one attempt, to be retried);
            // every other unsent item waits uncharged.
            let charged = items.filter { $0.status == "pending" && $0.attempts > 0 }
            #expect(charged.count <= 2 && charged.allSatisfy { $0.attempts == 1 }, "\(charged)")
            #expect(
                charged.allSatisfy { ($0.reason ?? "").hasPrefix("Will retry (attempt 1 of 5)") },
                "\(charged.map(\.reason))")
            #expect(
                try fixture.db.queryFirst("SELECT COUNT(*) AS n FROM fanout_leases WHERE owner IS NOT NULL")?
                    .decode("n", as: Int.self) == 0, "every lease given back")
            // The retry wait of the cut-off transfers passes.
            try fixture.db.execute("UPDATE bulk_email_job_items SET next_attempt_at = NULL WHERE status = 'pending'")
            let again = try TestServer.smtp()
            var next = env
            next["MAIL_PORT"] = "\(again.port)"
            for _ in 0..<3 {
                let result = try runFanout(
                    ["emails:process-jobs", "--batch-size", "10", "--max-time", "5m"], environment: next)
                #expect(result.status == 0, "\(result.stderr)")
                if try jobs.allSatisfy({ try fixture.job($0).status == "completed" }) { break }
            }
            for job in jobs {
                #expect(try fixture.statusCounts(job: job) == ["sent": 10])
                #expect(try fixture.countersMatchItems(job: job))
            }
            let second = again.deliveredRecipients
            #expect(Set(second).count == second.count, "the second server got each message once")
            #expect(deliveredFirst.union(second).count == 300, "every item reached a server")
            #expect(deliveredFirst.intersection(second).count <= 2, "twice: at most the 2 transfers cut off")
        }
    }

    /// A tick killed between ending a company's job and giving its lease back leaves the lease
    /// held with nothing in flight: the company's next job is served once that holder has been
    /// silent 30 s, not after --stuck-after (10 minutes). A holder silent as long with an item in
    /// flight, or silent for less, keeps its company.
    @Test func aSilentHolderWithNothingInFlightIsTakenOverAfterThirtySeconds() throws {
        try withMailSetup { fixture, smtp, env in
            func hold(_ company: Int, by owner: String, silentFor seconds: Int) throws {
                try fixture.db.execute(
                    "INSERT INTO fanout_leases (kind, company_id, owner, acquired_at, heartbeat_at) VALUES "
                        + "('email', ?, ?, NOW(6) - INTERVAL 5 MINUTE, NOW(6) - INTERVAL ? SECOND)",
                    [company, owner, seconds])
            }
            let orphaned = try fixture.emailJob(company: 7, count: 5)
            try hold(7, by: "dead-tick", silentFor: 40)
            let inFlight = try fixture.emailJob(company: 8, count: 5)
            try hold(8, by: "stopped-tick", silentFor: 40)
            try fixture.db.execute(
                "UPDATE bulk_email_jobs SET status = 'processing', started_at = NOW() WHERE id = ?", [inFlight])
            try fixture.db.execute(
                "UPDATE bulk_email_job_items SET status = 'processing', claimed_by = 'stopped-tick' "
                    + "WHERE bulk_email_job_id = ? ORDER BY id LIMIT 1", [inFlight])
            let recent = try fixture.emailJob(company: 9, count: 5)
            try hold(9, by: "live-tick", silentFor: 5)
            let result = try runFanout(["emails:process-jobs"], environment: env)
            #expect(result.status == 0, "\(result.stderr)")
            #expect(try fixture.statusCounts(job: orphaned) == ["sent": 5])
            #expect(try fixture.job(orphaned).status == "completed")
            #expect(try fixture.statusCounts(job: inFlight) == ["processing": 1, "pending": 4])
            #expect(try fixture.statusCounts(job: recent) == ["pending": 5])
            #expect(smtp.messageFiles.count == 5)
            let owners = try fixture.db.query("SELECT company_id, owner FROM fanout_leases ORDER BY company_id").map {
                try "\($0.decode("company_id", as: Int.self)):\($0.decodeIfPresent("owner", as: String.self) ?? "-")"
            }
            #expect(owners == ["7:-", "8:stopped-tick", "9:live-tick"])
        }
    }
}
