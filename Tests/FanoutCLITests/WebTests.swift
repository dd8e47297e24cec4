import Foundation
import MariaDB
import Testing
import TestSupport

/// The built `fanout-web` against the real MariaDB, over HTTP (curl), as a browser or a monitor
/// would use it.
@Suite(.enabled(if: TestEnvironment.hasDatabase && TestEnvironment.canStartServers))
struct WebTests {
    func withWebSetup(
        _ arguments: [String] = [], extra: [String: String] = [:],
        _ body: (JobFixture, TestServer, [String: String], WebServer) throws -> Void
    ) throws {
        try withTestDatabase { database, db in
            let fixture = try JobFixture(database: database, db: db)
            let smtp = try TestServer.smtp()
            let env = EmailTickTests.environment(fixture, smtp, try makeTestTemplates(), extra)
            let web = try WebServer(arguments, environment: env)
            try body(fixture, smtp, env, web)
        }
    }

    /// Cancel or retry as the page's form sends it.
    func post(_ web: WebServer, _ path: String, token: String?, origin: String? = nil) throws -> HTTPExchange {
        var form = ["confirmed": "1", "back": "/"]
        form["token"] = token
        return try web.request(path, method: "POST", form: form, headers: ["Origin": origin ?? web.base])
    }

    @Test func theJobsPageShowsBothKindsWithProgressAndSafeHeaders() throws {
        try withWebSetup { fixture, _, env, web in
            let email = try fixture.emailJob(company: 1, count: 70)
            let wallet = try fixture.walletJob(company: 2, count: 5)
            #expect(try runFanout(["emails:process-jobs"], environment: env).status == 0)
            let page = try web.request("/")
            #expect(page.status == 200)
            #expect(page.body.contains("id=\"job-email-\(email)\""))
            #expect(page.body.contains("id=\"job-wallet-\(wallet)\""))
            #expect(page.body.contains("50/70 (71%)"), "the email job's progress from its counters")
            #expect(page.body.contains("data-running=\"1\""), "an unfinished job keeps the page refreshing")
            // Scripts and styles run only with this answer's nonce; nothing is cached or framed.
            let policy = page.headers["content-security-policy"] ?? ""
            let nonce = policy.firstMatch(of: /script-src 'nonce-([0-9a-f]+)'/)?.1
            #expect(nonce != nil && page.body.contains("<script nonce=\"\(nonce!)\">"), "\(policy)")
            #expect(policy.contains("frame-ancestors 'none'"))
            #expect(page.headers["x-content-type-options"] == "nosniff")
            #expect(page.headers["referrer-policy"] == "same-origin")
            #expect(page.headers["cache-control"] == "no-store")
            // Filters: kind, status, company.
            #expect(!(try web.request("/?kind=wallet").body.contains("job-email-")))
            #expect(try web.request("/?status=processing").body.contains("job-email-\(email)"))
            #expect(!(try web.request("/?company=2").body.contains("job-email-")))
            #expect(try web.request("/?from=2000-01-01&to=2000-01-02").body.contains("No jobs match"))
        }
    }

    @Test func signInIsAskedForEverythingButHealthz() throws {
        let extra = ["FANOUT_WEB_USER": "ops", "FANOUT_WEB_PASSWORD": "correct horse"]
        try withWebSetup(extra: extra) { fixture, _, _, web in
            try fixture.emailJob(company: 1, count: 3)
            let anonymous = try web.request("/")
            #expect(anonymous.status == 401)
            #expect(anonymous.headers["www-authenticate"]?.hasPrefix("Basic realm=") == true)
            #expect(try web.request("/", user: ("ops", "wrong")).status == 401)
            #expect(try web.request("/api/jobs", user: ("ops2", "correct horse")).status == 401)
            let signedIn = try web.request("/", user: ("ops", "correct horse"))
            #expect(signedIn.status == 200)
            #expect(signedIn.body.contains("signed in as ops"))
            #expect(!signedIn.body.contains("correct horse"), "the password never reaches a page")
            #expect(try web.request("/healthz").status == 200)
            #expect(!web.log.contains("correct horse"))
        }
    }

    @Test func aNonLoopbackAddressNeedsCredentials() throws {
        try withTestDatabase { database, _ in
            let result = try runProcess(
                TestEnvironment.fanoutWebBinary, ["--listen", "0.0.0.0:\(try unusedLocalPort())"],
                environment: database.environment)
            #expect(result.status == 78)
            #expect(result.stderr.contains("FANOUT_WEB_USER and FANOUT_WEB_PASSWORD"), "\(result.stderr)")
            let bad = try runProcess(TestEnvironment.fanoutWebBinary, ["--listen", "nowhere"])
            #expect(bad.status == 64, "\(bad.stderr)")
        }
    }

    @Test func readOnlyShowsNoButtonsAndRefusesEveryPost() throws {
        try withWebSetup(["--read-only"]) { fixture, _, _, web in
            let job = try fixture.emailJob(company: 1, count: 10)
            let page = try web.request("/")
            #expect(page.status == 200 && page.body.contains("job-email-\(job)"))
            #expect(!page.body.contains("method=\"post\""))
            // Even with a token taken from a page that had one, nothing changes.
            let refused = try post(web, "/jobs/email/\(job)/cancel", token: "x")
            #expect(refused.status == 403)
            #expect(refused.body.contains("read-only"))
            let pause = try web.request("/workers/pause", method: "POST", form: ["type": "all"])
            #expect(pause.status == 403 && pause.body.contains("read-only"), "refused for being read-only")
            #expect(try fixture.job(job).status == "pending")
        }
    }

    @Test func changesNeedThisPagesTokenAndTheSameOrigin() throws {
        try withWebSetup { fixture, _, _, web in
            let job = try fixture.emailJob(company: 1, count: 10)
            let token = try #require(try web.request("/").formToken)
            let path = "/jobs/email/\(job)/cancel"
            #expect(try post(web, path, token: nil).status == 403, "no token")
            #expect(try post(web, path, token: String(repeating: "0", count: token.count)).status == 403)
            #expect(try post(web, path, token: token, origin: "https://evil.example").status == 403)
            let crossSite = try web.request(
                path, method: "POST", form: ["token": token, "confirmed": "1"],
                headers: ["Sec-Fetch-Site": "cross-site"])
            #expect(crossSite.status == 403)
            #expect(try fixture.job(job).status == "pending", "nothing changed")
            // Without the confirmation (a browser without JavaScript) the page asks first.
            let ask = try web.request(path, method: "POST", form: ["token": token], headers: ["Origin": web.base])
            #expect(ask.status == 200 && ask.body.contains("Cancel email job \(job)?"))
            #expect(try fixture.job(job).status == "pending")
            let done = try post(web, path, token: token)
            #expect(done.status == 303)
            #expect(done.headers["location"] == "/?notice=cancelled")
            let after = try fixture.job(job)
            #expect(after.status == "cancelled")
            #expect(after.reason?.contains("from 127.0.0.1 on the web page") == true, "\(after.reason ?? "")")
            #expect(web.log.contains("cancel email job \(job) by the operator from 127.0.0.1"))
        }
    }

    /// The page logs as the ticks do: a cancel from the page is in FANOUT_LOG_FILE too.
    @Test func aChangeFromThePageReachesTheLogFile() throws {
        let file = TestEnvironment.scratchDirectory.appendingPathComponent("web-\(UUID().uuidString).log")
        try withWebSetup(extra: ["FANOUT_LOG_FILE": file.path]) { fixture, _, _, web in
            let job = try fixture.emailJob(company: 1, count: 3)
            let token = try #require(try web.request("/").formToken)
            #expect(try post(web, "/jobs/email/\(job)/cancel", token: token).status == 303)
            let logged = (try? String(contentsOf: file, encoding: .utf8)) ?? ""
            #expect(logged.contains("cancel email job \(job) by the operator from 127.0.0.1"), "\(logged)")
        }
    }

    /// The same job state, changed once through the page and once through the CLI, ends the same.
    @Test func cancelAndRetryDoExactlyWhatTheCLIDoes() throws {
        try withWebSetup { fixture, _, env, web in
            func twinJob(_ company: UInt64) throws -> UInt64 {
                try fixture.emailJob(
                    company: company,
                    recipients: (1...80).map { n in
                        (
                            n % 10 == 0 ? "reject550-\(company)-\(n)@example.test" : "r\(company)-\(n)@example.test",
                            nil, nil
                        )
                    })
            }
            let byWeb = try twinJob(1)
            let byCLI = try twinJob(2)
            #expect(try runFanout(["emails:process-jobs"], environment: env).status == 0)
            let token = try #require(try web.request("/").formToken)
            #expect(try post(web, "/jobs/email/\(byWeb)/cancel", token: token).status == 303)
            #expect(try runFanout(["cancel", "email", String(byCLI)], environment: env).status == 0)
            #expect(try runFanout(["emails:process-jobs"], environment: env).status == 0)
            #expect(try fixture.statusCounts(job: byWeb) == fixture.statusCounts(job: byCLI))
            #expect(try fixture.statusCounts(job: byWeb) == ["sent": 45, "failed": 5, "cancelled": 30])
            #expect(try fixture.job(byWeb).status == "cancelled")
            #expect(try fixture.countersMatchItems(job: byWeb))
            // A sent item's row shows its own (empty) reason, not the job's cancel reason.
            let sentRows = try web.request("/jobs/email/\(byWeb)?status=sent").body
            #expect(sentRows.matches(of: /<tr><td>(\d+)<\/td>/).count == 45)
            #expect(!sentRows.contains("<td>Cancelled by"), "\(sentRows)")
            // Retry failed on finished twins.
            let again = try twinJob(3)
            let againCLI = try twinJob(4)
            for _ in 0..<4 { #expect(try runFanout(["emails:process-jobs"], environment: env).status == 0) }
            #expect(try fixture.job(again).status == "completed")
            let page = try web.request("/jobs/email/\(again)")
            #expect(page.body.contains("/jobs/email/\(again)/retry"))
            #expect(try post(web, "/jobs/email/\(again)/retry", token: token).status == 303)
            #expect(try runFanout(["retry", "email", String(againCLI)], environment: env).status == 0)
            #expect(try fixture.statusCounts(job: again) == fixture.statusCounts(job: againCLI))
            #expect(try fixture.statusCounts(job: again) == ["sent": 72, "pending": 8])
            #expect(try fixture.job(again).status == fixture.job(againCLI).status)
            #expect(try fixture.countersMatchItems(job: again))
        }
    }

    @Test func hostileTextFromRepliesAndRecipientsIsInert() throws {
        try withWebSetup { fixture, _, _, web in
            let job = try fixture.emailJob(
                company: 1, recipients: [("a@example.test", "<script>alert('name')</script>", nil)])
            try fixture.db.execute(
                "UPDATE bulk_email_job_items SET status = 'failed', reason = ? WHERE bulk_email_job_id = ?",
                ["550 <img src=x onerror=alert(1)> \"quoted\"", job])
            try fixture.db.execute("UPDATE bulk_email_jobs SET template = ? WHERE id = ?", ["<b>tpl</b>", job])
            for path in ["/", "/jobs/email/\(job)"] {
                let page = try web.request(path)
                #expect(page.status == 200)
                #expect(!page.body.contains("<script>alert"), "\(path)")
                #expect(!page.body.contains("<img src=x"), "\(path)")
                #expect(!page.body.contains("<b>tpl</b>"), "\(path)")
            }
            let detail = try web.request("/jobs/email/\(job)").body
            #expect(detail.contains("&lt;script&gt;alert(&#39;name&#39;)&lt;/script&gt;"))
            #expect(detail.contains("550 &lt;img src=x onerror=alert(1)&gt; &quot;quoted&quot;"))
        }
    }

    @Test func theJobPageGroupsFailuresAndPagesItemsByKey() throws {
        try withWebSetup { fixture, _, env, web in
            let job = try fixture.emailJob(
                company: 1,
                recipients: (1...250).map { n in
                    (n % 50 == 0 ? "reject550-\(n)@example.test" : "guest\(n)@example.test", "Guest \(n)", nil)
                })
            for _ in 0..<5 { _ = try runFanout(["emails:process-jobs"], environment: env) }
            let page = try web.request("/jobs/email/\(job)")
            #expect(page.status == 200)
            #expect(page.body.contains("id=\"failures\""))
            #expect(page.body.components(separatedBy: "Recipient address rejected").count - 1 >= 5)
            let firstIDs = page.body.matches(of: /<tr><td>(\d+)<\/td>/).map { String($0.1) }
            #expect(firstIDs.count == 100)
            let next = try #require(page.body.firstMatch(of: /href="([^"]+)" id="next"/)?.1)
            let second = try web.request(String(next).replacingOccurrences(of: "&amp;", with: "&"))
            let secondIDs = second.body.matches(of: /<tr><td>(\d+)<\/td>/).map { String($0.1) }
            #expect(secondIDs.count == 100)
            #expect(Set(firstIDs).isDisjoint(with: secondIDs))
            let secondFirst = try #require(secondIDs.first.flatMap { UInt64($0) })
            #expect(try secondFirst > #require(firstIDs.last.flatMap { UInt64($0) }))
            let failed = try web.request("/jobs/email/\(job)?status=failed").body
            #expect(failed.matches(of: /<tr><td>(\d+)<\/td>/).count == 5)
            let search = try web.request("/jobs/email/\(job)?q=guest12").body
            // guest12, guest120..129: eleven, none other.
            #expect(search.matches(of: /<tr><td>(\d+)<\/td>/).count == 11)
            #expect(try web.request("/jobs/email/99999").status == 404)
        }
    }

    @Test func downloadsAreTheCLIReportByteForByte() throws {
        try withWebSetup { fixture, _, env, web in
            // More than one page of the download (2,000 items a page).
            let job = try fixture.emailJob(company: 1, count: 4100)
            _ = try runFanout(["emails:process-jobs"], environment: env)
            for format in ["csv", "json", "jsonl"] {
                let download = try web.request("/jobs/email/\(job)/report/\(format)")
                #expect(download.status == 200)
                #expect(download.headers["content-disposition"]?.contains("email-job-\(job).\(format)") == true)
                let cli = try runFanout(["report", "email", String(job), "--format", format], environment: env)
                #expect(download.body == cli.stdout, "\(format)")
            }
            #expect(try web.request("/jobs/email/\(job)/report/html").body.contains("</html>"))
            #expect(try web.request("/jobs/email/\(job)/report/pdf").status == 404)
        }
    }

    @Test func theAPIUsesTheCLIsAndTheReportsNames() throws {
        try withWebSetup { fixture, _, env, web in
            let job = try fixture.emailJob(company: 7, count: 60)
            #expect(try runFanout(["emails:process-jobs"], environment: env).status == 0)
            let list = try web.request("/api/jobs")
            #expect(list.status == 200 && list.headers["content-type"] == "application/json")
            let jobs = try JSONSerialization.jsonObject(with: Data(list.body.utf8)) as? [[String: Any]]
            let cli = try runFanout(["jobs", "--format", "json"], environment: env)
            let cliJobs = try JSONSerialization.jsonObject(with: Data(cli.stdout.utf8)) as? [[String: Any]]
            #expect(jobs?.first.map { Set($0.keys) } == cliJobs?.first.map { Set($0.keys) })
            #expect(jobs?.first?["processed_items"] as? Int == 50)
            let one = try web.request("/api/jobs/email/\(job)?status=sent&limit=10")
            let object = try JSONSerialization.jsonObject(with: Data(one.body.utf8)) as? [String: Any]
            let items = object?["items"] as? [[String: Any]]
            #expect(items?.count == 10)
            #expect(
                items?.first.map { Set($0.keys) }
                    == [
                        "id", "email", "name", "status", "attempts", "in_doubt", "response_code", "processed_at",
                        "reason",
                    ])
            #expect((object?["counts"] as? [String: Int]) == ["sent": 50, "pending": 10])
            #expect(try web.request("/api/jobs/email/424242").status == 404)
        }
    }

    @Test func healthzSaysWhyWhenTheDatabaseIsGoneAndTermStopsTheServer() throws {
        try withTestDatabase { database, _ in
            var env = database.environment
            env["DB_SOCKET"] = "/nonexistent/mysqld.sock"
            env["DB_HOST"] = "127.0.0.1"
            env["DB_PORT"] = String(try unusedLocalPort())
            let web = try WebServer(environment: env)
            let health = try web.request("/healthz")
            #expect(health.status == 503)
            #expect(health.body.contains("database unreachable"), "\(health.body)")
            #expect(!health.body.contains(env["DB_PASSWORD"] ?? "never"))
            #expect(try web.request("/").status == 503)
            web.process.signal(SIGTERM)
            #expect(web.process.wait(seconds: 30) == 0)
        }
    }

    @Test func theWorkersPageShowsWorkersAndPausesThem() throws {
        try withWebSetup { fixture, _, env, web in
            let empty = try web.request("/workers")
            #expect(empty.status == 200 && empty.body.contains("No worker is running"))
            try fixture.emailJob(company: 1, count: 5)
            let output = TestEnvironment.scratchDirectory.appendingPathComponent("web-worker-\(UUID().uuidString)")
            let worker = try startFanout(
                ["work", "--type", "email", "--name", "page-w"], environment: env, output: output)
            defer {
                worker.signal(SIGTERM)
                _ = worker.wait(seconds: 60)
            }
            #expect(waitUntil(seconds: 30) { (try? web.request("/workers").body.contains("page-w")) == true })
            let page = try web.request("/workers")
            let token = try #require(page.formToken)
            let paused = try web.request(
                "/workers/pause", method: "POST", form: ["token": token, "confirmed": "1", "type": "email"],
                headers: ["Origin": web.base])
            #expect(paused.status == 303)
            let control = try fixture.db.query("SELECT name, requested_by FROM fanout_control")
            #expect(control.count == 1)
            #expect(try control.first?.decode("name", as: String.self) == "pause:email")
            #expect(try control.first?.decode("requested_by", as: String.self).contains("127.0.0.1") == true)
        }
    }
}
