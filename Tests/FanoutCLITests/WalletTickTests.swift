import Foundation
import MariaDB
import Testing
import TestSupport

/// The cron tick for wallet jobs, through the built binary, against the real MariaDB and a real
/// HTTP server.
@Suite(.enabled(if: TestEnvironment.hasDatabase && TestEnvironment.canStartServers))
struct WalletTickTests {
    func withWalletSetup(_ body: (JobFixture, TestServer, [String: String]) throws -> Void) throws {
        try withTestDatabase { database, db in
            let fixture = try JobFixture(database: database, db: db)
            let http = try TestServer.http()
            var env = database.environment
            env["FANOUT_TEMPLATES"] = try makeWalletTemplates().path
            env["WALLET_BASE_URL"] = "http://127.0.0.1:\(http.port)"
            env["WALLET_TOKEN"] = "wallet-secret-token"
            env["FANOUT_HTTP_TIMEOUT"] = "2"
            try body(fixture, http, env)
        }
    }

    func collected(_ server: TestServer) throws -> [[String: Any]] {
        let folder = server.directory.appendingPathComponent("requests")
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? []).filter {
            $0.hasSuffix(".json")
        }.sorted()
        return try names.map {
            try JSONSerialization.jsonObject(with: Data(contentsOf: folder.appendingPathComponent($0)))
                as! [String: Any]
        }
    }

    /// `{{env.X}}` in the request URL inserts the setting as it is, like `{{{env.X}}}`; item
    /// values stay percent-encoded.
    @Test(arguments: ["{{env.WALLET_BASE_URL}}", "{{{env.WALLET_BASE_URL}}}", "{{ env.WALLET_BASE_URL }}"])
    func aSettingInTheURLIsInsertedAsItIs(base: String) throws {
        try withWalletSetup { fixture, http, env in
            var env = env
            let folder = TestEnvironment.makeTemporaryDirectory("templates")
            try FileManager.default.createDirectory(
                at: folder.appendingPathComponent("wallet"), withIntermediateDirectories: true)
            let braces =
                "POST \(base)/collect/{{card_id}}/{{label}}\n"
                + "Content-Type: application/json\n\n{\"card\": {{card_id}}}\n"
            try braces.write(
                to: folder.appendingPathComponent("wallet/braces.http.mustache"), atomically: true, encoding: .utf8)
            env["FANOUT_TEMPLATES"] = folder.path
            let job = try fixture.walletJob(
                company: 5, template: "braces", cards: [(7, "google", #"{"label": "a/b c"}"#)])
            let result = try runFanout(["wallet:process-jobs"], environment: env)
            #expect(result.status == 0, "\(result.stderr)")
            #expect(try fixture.walletJobRow(job).status == "completed")
            let items = try fixture.walletItems(job: job)
            #expect(items.map(\.status) == ["completed"], "\(items.map { $0.reason ?? "" })")
            #expect(try collected(http).compactMap { $0["path"] as? String } == ["/collect/7/a%2Fb%20c"])
        }
    }

    /// A URL that no item could make valid, because of a setting or the template, fails the job
    /// once with a reason naming it (and doctor says the same before); nothing is sent.
    @Test func aURLNoItemCouldMakeValidFailsTheJobOnce() throws {
        try withWalletSetup { fixture, http, env in
            let folder = TestEnvironment.makeTemporaryDirectory("templates")
            try FileManager.default.createDirectory(
                at: folder.appendingPathComponent("wallet"), withIntermediateDirectories: true)
            try "POST {{env.WALLET_API_URL}}/cards/{{card_id}}\n".write(
                to: folder.appendingPathComponent("wallet/api.http.mustache"), atomically: true, encoding: .utf8)
            try "POST /cards/{{card_id}}\n".write(
                to: folder.appendingPathComponent("wallet/relative.http.mustache"), atomically: true, encoding: .utf8)
            var env = env
            env["FANOUT_TEMPLATES"] = folder.path
            let unset = try fixture.walletJob(company: 6, template: "api", count: 3)
            let relative = try fixture.walletJob(company: 7, template: "relative", count: 2)
            #expect(try runFanout(["wallet:process-jobs"], environment: env).status == 0)
            let unsetRow = try fixture.walletJobRow(unset)
            #expect(unsetRow.status == "failed")
            #expect(unsetRow.reason?.contains("WALLET_API_URL") == true, "\(unsetRow.reason ?? "")")
            #expect(
                try fixture.walletItems(job: unset).allSatisfy {
                    $0.status == "failed" && $0.attempts == 0 && $0.reason == unsetRow.reason
                })
            let relativeRow = try fixture.walletJobRow(relative)
            #expect(relativeRow.status == "failed")
            #expect(
                relativeRow.reason?.contains("does not start with http:// or https://") == true,
                "\(relativeRow.reason ?? "")")
            #expect(try collected(http).isEmpty)

            // A setting with the wrong scheme is named with its value.
            env["WALLET_API_URL"] = "ftp://files.example.test"
            let wrong = try fixture.walletJob(company: 8, template: "api", count: 1)
            #expect(try runFanout(["wallet:process-jobs"], environment: env).status == 0)
            #expect(try fixture.walletJobRow(wrong).reason?.contains("WALLET_API_URL=ftp://files.example.test") == true)

            // doctor tells before any job runs.
            env.removeValue(forKey: "WALLET_API_URL")
            let doctor = try runFanout(["doctor"], environment: env)
            #expect(doctor.status != 0)
            #expect(doctor.stdout.contains("WALLET_API_URL, which is not set"), "\(doctor.stdout)")
            #expect(doctor.stdout.contains("relative.http.mustache: the request URL does not start with http"))
        }
    }

    /// Wallet reports name fields as the wallet item table does, in every format.
    @Test func reportColumnsAreTheItemTablesInEveryFormat() throws {
        try withWalletSetup { fixture, _, env in
            let job = try fixture.walletJob(company: 4, cards: [(7, "google", nil), (8, "apple", nil)])
            #expect(try runFanout(["wallet:process-jobs"], environment: env).status == 0)
            let columns = [
                "id", "card_id", "platform", "status", "attempts", "in_doubt", "http_status", "unregistered_at",
                "processed_at", "reason",
            ]
            let csv = try runFanout(["report", "wallet", String(job), "--format", "csv"], environment: env)
            let lines = csv.stdout.split(separator: "\r\n").map(String.init)
            #expect(lines.first == columns.joined(separator: ","))
            #expect(lines.dropFirst().first?.contains(",7,google,completed,1,0,200,,") == true, "\(lines)")
            for format in ["json", "jsonl"] {
                let out = try runFanout(["report", "wallet", String(job), "--format", format], environment: env)
                let objects: [[String: Any]]
                if format == "json" {
                    objects = try #require(
                        (try JSONSerialization.jsonObject(with: Data(out.stdout.utf8)) as? [String: Any])?["items"]
                            as? [[String: Any]])
                } else {
                    objects = try out.stdout.split(separator: "\n").dropFirst().map {
                        try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any]
                    }
                }
                #expect(objects.count == 2)
                #expect(objects.allSatisfy { Set($0.keys) == Set(columns) }, "\(format)")
                #expect(objects.first?["card_id"] as? Int == 7)
                #expect(objects.first?["http_status"] as? Int == 200)
                #expect((objects.first?["processed_at"] as? String)?.hasSuffix("Z") == true)
            }
            let table = try runFanout(["report", "wallet", String(job)], environment: env)
            let html = try runFanout(["report", "wallet", String(job), "--format", "html"], environment: env)
            for name in columns {
                #expect(table.stdout.contains(name))
                #expect(html.stdout.contains("<th>\(name)</th>"))
            }
        }
    }

    @Test func twentyFiveItemsInBatchesOfTen() throws {
        try withWalletSetup { fixture, http, env in
            let job = try fixture.walletJob(company: 1, count: 25)
            var completedAfter: [Int] = []
            for _ in 0..<3 {
                let result = try runFanout(["wallet:process-jobs"], environment: env)
                #expect(result.status == 0, "\(result.stderr)")
                completedAfter.append(try fixture.walletCounts(job: job)["completed"] ?? 0)
            }
            #expect(completedAfter == [10, 20, 25])
            #expect(try fixture.walletJobRow(job).status == "completed")
            #expect(try fixture.walletItems(job: job).allSatisfy { $0.httpStatus == 200 })
            #expect(try fixture.walletCountersMatchItems(job: job))
            let requests = try collected(http)
            #expect(requests.count == 25)
            let first = try #require(requests.first)
            let headers = first["headers"] as? [String: String]
            #expect(headers?["idempotency-key"]?.hasPrefix("fanout-wallet-\(job)-") == true)
            #expect(headers?["authorization"] == "Bearer wallet-secret-token")
            #expect(headers?["content-type"] == "application/json")
        }
    }

    @Test func untrustedValuesArriveExactlyAsStoredInValidJSON() throws {
        let nasty = "Quote \" backslash \\ newline \n tab \t emoji 🎉 RTL שלום عربي </script> {{x}} \u{1}"
        let data = try String(
            decoding: JSONSerialization.data(withJSONObject: [
                "holder_name": nasty, "note": "a\"},\"injected\":true,\"x\":{\"",
            ]), as: UTF8.self)
        try withWalletSetup { fixture, http, env in
            let job = try fixture.walletJob(company: 1, cards: [(77, "goo gle/..&?x=1", data)])
            let result = try runFanout(["wallet:process-jobs"], environment: env)
            #expect(result.status == 0, "\(result.stderr)")
            let request = try #require(try collected(http).first)
            let body = try #require(request["body"] as? String)
            let object = try #require(try JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any])
            #expect(object["holder"] as? String == nasty)
            #expect(object["note"] as? String == "a\"},\"injected\":true,\"x\":{\"")
            #expect(object["injected"] == nil)
            #expect(object.count == 6)
            // The platform went into the query string percent-encoded: it arrives whole.
            let query = request["query_params"] as? [String: [String]]
            #expect(query?["platform"] == ["goo gle/..&?x=1"])
            #expect(try fixture.walletCounts(job: job) == ["completed": 1])
        }
    }

    @Test func headerWithALineBreakFailsTheItem() throws {
        try withWalletSetup { fixture, http, env in
            let job = try fixture.walletJob(
                company: 1, template: "header",
                cards: [
                    (1, "apple", #"{"note": "fine"}"#),
                    (2, "apple", #"{"note": "evil\r\nX-Injected: yes"}"#),
                ])
            let result = try runFanout(["wallet:process-jobs"], environment: env)
            #expect(result.status == 0, "\(result.stderr)")
            let items = try fixture.walletItems(job: job)
            #expect(items[0].status == "completed")
            #expect(items[1].status == "failed")
            #expect(items[1].reason?.contains("line break") == true)
            #expect(try collected(http).count == 1)
        }
    }

    @Test func statusesAreClassified() throws {
        try withWalletSetup { fixture, _, env in
            let key = UUID().uuidString.prefix(8)
            let job = try fixture.walletJob(
                company: 1, template: "route",
                cards: [
                    (1, nil, #"{"path": "status/404"}"#),
                    (2, nil, "{\"path\": \"flaky/\(key)/1\"}"),
                    (3, nil, "{\"path\": \"retry-after/\(key)/3\"}"),
                    (4, nil, #"{"path": "slow/5"}"#),
                    (5, nil, #"{"path": "status/201"}"#),
                ])
            let first = try runFanout(["wallet:process-jobs", "--retry-backoff", "0s"], environment: env)
            #expect(first.status == 0, "\(first.stderr)")
            var items = try fixture.walletItems(job: job)
            #expect(items[0].status == "failed")
            #expect(items[0].httpStatus == 404)
            #expect(items[0].reason?.contains("HTTP 404") == true)
            #expect(items[0].reason?.contains("status 404") == true)
            #expect(items[1].status == "pending")
            #expect(items[1].httpStatus == 500)
            #expect(items[2].status == "pending")
            #expect(items[2].httpStatus == 429)
            #expect(items[3].status == "pending")
            #expect(
                items[3].reason?.lowercased().contains("timeout") == true
                    || items[3].reason?.lowercased().contains("timed out") == true)
            #expect(items[4].status == "completed")
            // The 429's next attempt waits its Retry-After (3 s) from when it was sent; the 500's
            // does not wait (backoff 0s). (Outcomes are written as they arrive, so this is read
            // from the row rather than from which tick retried it.)
            let waits = try fixture.db.query(
                "SELECT TIMESTAMPDIFF(MICROSECOND, claimed_at, next_attempt_at) AS w "
                    + "FROM bulk_wallet_api_job_items WHERE bulk_wallet_api_job_id = ? ORDER BY id",
                [job]
            ).map { try $0.decodeIfPresent("w", as: Int64.self) }
            #expect((waits[2] ?? 0) >= 3_000_000, "\(waits)")
            #expect((waits[1] ?? .max) < 3_000_000, "\(waits)")
            let second = try runFanout(["wallet:process-jobs", "--retry-backoff", "0s"], environment: env)
            #expect(second.status == 0, "\(second.stderr)")
            items = try fixture.walletItems(job: job)
            #expect(items[1].status == "completed")
            Thread.sleep(forTimeInterval: 3.2)
            _ = try runFanout(["wallet:process-jobs", "--retry-backoff", "0s"], environment: env)
            items = try fixture.walletItems(job: job)
            #expect(items[2].status == "completed")
            #expect(items[2].attempts == 2)
            #expect(try fixture.walletCountersMatchItems(job: job))
        }
    }

    @Test func eightTicksAtOnceSendEachItemOnce() throws {
        try withWalletSetup { fixture, http, env in
            let job = try fixture.walletJob(company: 1, count: 120)
            let outputs = (0..<8).map {
                TestEnvironment.scratchDirectory.appendingPathComponent("wallet-overlap-\($0)-\(UUID().uuidString)")
            }
            let children = try outputs.map {
                try startFanout(
                    ["wallet:process-jobs", "--batch-size", "30", "--until-done"], environment: env, output: $0)
            }
            for child in children { #expect(child.wait() == 0) }
            let paths = try collected(http).compactMap { $0["path"] as? String }
            #expect(paths.count == 120)
            #expect(Set(paths).count == 120)
            #expect(try fixture.walletJobRow(job).status == "completed")
            #expect(try fixture.walletCountersMatchItems(job: job))
        }
    }

    @Test func plainSQLCancelStopsRequestsWithinASecond() throws {
        try withWalletSetup { fixture, http, env in
            var slow = env
            slow["FANOUT_HTTP_TIMEOUT"] = "10"
            let job = try fixture.walletJob(company: 1, count: 300)
            let output = TestEnvironment.scratchDirectory.appendingPathComponent("wallet-cancel-\(UUID().uuidString)")
            let child = try startFanout(
                ["wallet:process-jobs", "--batch-size", "300", "--rate", "40/s"], environment: slow, output: output)
            #expect(waitUntil(seconds: 20) { ((try? collected(http).count) ?? 0) >= 10 })
            try fixture.db.execute(
                "UPDATE bulk_wallet_api_jobs SET status = 'cancelled', reason = 'Campaign withdrawn' WHERE id = ?",
                [job])
            #expect(child.wait() == 0)
            let afterCancel = try collected(http).count
            let counts = try fixture.walletCounts(job: job)
            #expect((counts["completed"] ?? 0) == afterCancel)
            #expect((counts["completed"] ?? 0) + (counts["cancelled"] ?? 0) == 300)
            // At 40 requests/s, a second is at most ~40 more requests after the commit.
            #expect(afterCancel < 10 + 40 + 60)
            #expect(
                try fixture.walletItems(job: job).filter { $0.status == "cancelled" }.allSatisfy {
                    $0.reason == "Campaign withdrawn"
                })
            #expect(try fixture.walletCountersMatchItems(job: job))
        }
    }

    @Test func killedMidBatchThenResumed() throws {
        try withWalletSetup { fixture, http, env in
            let job = try fixture.walletJob(company: 1, count: 200)
            let output = TestEnvironment.scratchDirectory.appendingPathComponent("wallet-kill-\(UUID().uuidString)")
            let child = try startFanout(
                ["wallet:process-jobs", "--batch-size", "200", "--rate", "100/s"], environment: env, output: output)
            #expect(waitUntil(seconds: 20) { ((try? collected(http).count) ?? 0) >= 20 })
            child.signal(SIGKILL)
            child.wait()
            let inFlight = try fixture.walletCounts(job: job)["processing"] ?? 0
            #expect(inFlight > 0)
            Thread.sleep(forTimeInterval: 2.2)
            for _ in 0..<4 {
                _ = try runFanout(
                    ["wallet:process-jobs", "--batch-size", "200", "--stuck-after", "2s"], environment: env)
                if try fixture.walletJobRow(job).status == "completed" { break }
            }
            #expect(try fixture.walletCounts(job: job) == ["completed": 200])
            let paths = try collected(http).compactMap { $0["path"] as? String }
            #expect(Set(paths).count == 200)
            #expect(paths.count - 200 <= inFlight)
            #expect(try fixture.walletCountersMatchItems(job: job))
        }
    }

    @Test func selfSignedServerIsRejectedUnlessItsCertificateIsTrusted() throws {
        try withTestDatabase { database, db in
            let fixture = try JobFixture(database: database, db: db)
            let job = try fixture.walletJob(
                company: 1, template: "route", cards: [(1, nil, #"{"path": "status/200"}"#)])
            var env = database.environment
            env["FANOUT_TEMPLATES"] = try makeWalletTemplates().path
            env["WALLET_BASE_URL"] = TestEnvironment.httpsURL
            let refused = try runFanout(["wallet:process-jobs"], environment: env)
            #expect(refused.status == 69, "\(refused.stderr)")
            #expect(refused.stderr.split(separator: "\n").count == 1, "\(refused.stderr)")
            #expect(try fixture.walletCounts(job: job) == ["pending": 1])
            #expect(try fixture.walletItems(job: job)[0].attempts == 0)
            env["FANOUT_HTTP_CA_FILE"] = TestEnvironment.tlsCertificate
            let trusted = try runFanout(["wallet:process-jobs"], environment: env)
            #expect(trusted.status == 0, "\(trusted.stderr)")
            #expect(try fixture.walletCounts(job: job) == ["completed": 1])
        }
    }

    @Test func unknownTemplateFailsTheJob() throws {
        try withWalletSetup { fixture, _, env in
            let job = try fixture.walletJob(company: 1, template: "nope", count: 2)
            let result = try runFanout(["wallet:process-jobs"], environment: env)
            #expect(result.status == 0)
            #expect(try fixture.walletJobRow(job).status == "failed")
            #expect(try fixture.walletJobRow(job).reason?.contains("nope") == true)
            #expect(try fixture.walletCounts(job: job) == ["failed": 2])
        }
    }

    @Test func stoppedTickTakenOverAndResumedChangesNoRow() throws {
        try withWalletSetup { fixture, http, env in
            let job = try fixture.walletJob(company: 1, count: 150)
            let output = TestEnvironment.scratchDirectory.appendingPathComponent("wallet-stop-\(UUID().uuidString)")
            let stopped = try startFanout(
                ["wallet:process-jobs", "--batch-size", "150", "--rate", "50/s"], environment: env, output: output)
            #expect(waitUntil(seconds: 20) { ((try? collected(http).count) ?? 0) >= 10 })
            let rows = try fixture.walletStopTakeOverResume(job: job, paused: stopped) {
                let result = try runFanout(
                    ["wallet:process-jobs", "--batch-size", "150", "--stuck-after", "2s"], environment: env)
                #expect(result.status == 0, "\(result.stderr)")
            }
            #expect(try fixture.walletJobRow(job).status == "completed")
            #expect(rows.resumedStatus != 0)
            #expect(rows.afterResume == rows.afterTakeover)
            #expect(try fixture.walletCountersMatchItems(job: job))
        }
    }
}
