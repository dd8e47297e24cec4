import Foundation
import MariaDB
import Testing
import TestSupport

/// Wallet jobs to Google Wallet and APNs through the built binary, against doubles that verify
/// what the real services verify: a token endpoint checking the JWT's RS256 signature and claims,
/// a Wallet API accepting only its tokens, and nginx demanding the Pass Type ID certificate over
/// HTTP/2.
@Suite(.enabled(if: TestEnvironment.hasDatabase && TestEnvironment.canStartServers))
struct WalletPlatformTests {
    static let googleTemplate = """
        # @auth google
        PATCH {{env.WALLET_GOOGLE_API_BASE}}/genericObject/{{object_id}}
        Content-Type: application/json

        {"id": "{{object_id}}", "cardTitle": {"defaultValue": {"language": "en", "value": "{{holder_name}}"}}}
        ###
        POST {{env.WALLET_GOOGLE_API_BASE}}/genericObject
        Content-Type: application/json

        {"id": "{{object_id}}", "cardTitle": {"defaultValue": {"language": "en", "value": "{{holder_name}}"}}}
        """

    static let appleTemplate = """
        # @auth apns
        POST {{env.WALLET_APNS_BASE}}/3/device/{{push_token}}
        Content-Type: application/json

        {}
        """

    struct Setup {
        var fixture: JobFixture
        var google: GoogleWalletDouble
        var apns: APNsDouble
        var env: [String: String]
    }

    func withPlatforms(_ body: (Setup) throws -> Void) throws {
        try withTestDatabase { database, db in
            let fixture = try JobFixture(database: database, db: db)
            let google = try GoogleWalletDouble()
            let apns = try APNsDouble()
            let templates = TestEnvironment.makeTemporaryDirectory("platform-templates")
            let wallet = templates.appendingPathComponent("wallet")
            try FileManager.default.createDirectory(at: wallet, withIntermediateDirectories: true)
            try Self.googleTemplate.write(
                to: wallet.appendingPathComponent("card.google.http.mustache"), atomically: true, encoding: .utf8)
            try Self.appleTemplate.write(
                to: wallet.appendingPathComponent("card.apple.http.mustache"), atomically: true, encoding: .utf8)
            var env = database.environment
            env["FANOUT_TEMPLATES"] = templates.path
            env["WALLET_GOOGLE_KEY_FILE"] = google.keyFile
            env["WALLET_GOOGLE_API_BASE"] = google.apiBase
            env["WALLET_APNS_CERT"] = apns.file("client.pem")
            env["WALLET_APNS_KEY"] = apns.file("client-encrypted.key")
            env["WALLET_APNS_KEY_PASSWORD"] = "key-secret"
            env["WALLET_APNS_TOPIC"] = "pass.test.fanout"
            env["WALLET_APNS_BASE"] = apns.base
            env["WALLET_TLS_CA"] = apns.caFile
            try body(Setup(fixture: fixture, google: google, apns: apns, env: env))
        }
    }

    func googleCard(_ object: String) -> (cardID: UInt64?, platform: String?, data: String?) {
        (nil, "google", #"{"object_id": "3388000000012345678.\#(object)", "holder_name": "Ada"}"#)
    }

    func appleCard(_ token: String) -> (cardID: UInt64?, platform: String?, data: String?) {
        (nil, "apple", #"{"push_token": "\#(token)"}"#)
    }

    func tick(_ env: [String: String], _ extra: [String] = []) throws -> ProcessResult {
        try runFanout(["wallet:process-jobs", "-v"] + extra, environment: env)
    }

    @Test func aJobMixingGoogleAndAppleCompletes() throws {
        try withPlatforms { setup in
            let cards = [
                googleCard("card-1"), googleCard("new-2"), appleCard("dev1"), appleCard("gone5"), appleCard("dev1"),
                appleCard("bad7"),
            ]
            let job = try setup.fixture.walletJob(company: 1, template: "card", cards: cards)
            let result = try tick(setup.env)
            #expect(result.status == 0, "\(result.stderr)")
            #expect(try setup.fixture.walletJobRow(job).status == "completed")
            let items = try setup.fixture.walletItems(job: job)
            #expect(items.map(\.status) == ["completed", "completed", "completed", "failed", "completed", "failed"])
            try #require(items.count == 6)
            #expect(items[3].reason?.hasPrefix("unregistered: APNs 410 Unregistered since ") == true, "\(items[3])")
            #expect(items[4].reason?.contains("one push for this device, sent for item \(items[2].id)") == true)
            #expect(items[5].reason == "APNs 400 BadDeviceToken")
            #expect(items.allSatisfy { $0.attempts == 1 })
            // The update of a card Google does not have yet fell back to the insert.
            let api = setup.google.requests(kind: "api").map { "\($0["method"]!) \($0["status"]!) \($0["object"]!)" }
            #expect(api.contains("PATCH 404 3388000000012345678.new-2"))
            #expect(api.contains("POST 200 3388000000012345678.new-2"))
            #expect(setup.google.requests(kind: "token").count == 1)
            // APNs: HTTP/2, the Pass Type ID certificate, one push per device.
            let pushes = setup.apns.requests
            #expect(pushes.count == 3, "\(pushes)")
            #expect(pushes.allSatisfy { $0["protocol"] as? String == "HTTP/2.0" })
            #expect(pushes.allSatisfy { ($0["client_dn"] as? String)?.contains("UID=pass.test.fanout") == true })
            #expect(pushes.allSatisfy { $0["topic"] as? String == "pass.test.fanout" })
            // The documented query finds the device to forget.
            let gone = try setup.fixture.db.query(
                """
                SELECT JSON_VALUE(data, '$.push_token') AS token FROM bulk_wallet_api_job_items
                WHERE unregistered_at IS NOT NULL
                """)
            #expect(try gone.map { try $0.decode("token", as: String.self) } == ["gone5"])
        }
    }

    /// A first push of new cards: every update meets 404 and falls back to its insert, as a
    /// follow-up the pool runs beside the other transfers (the last ones too, after the batch's
    /// items ran out), each within the item's one attempt.
    @Test func newCardsAreInsertedAfterTheirUpdatesOnEveryConnection() throws {
        try withPlatforms { setup in
            let job = try setup.fixture.walletJob(
                company: 1, template: "card", cards: (1...12).map { googleCard("new-\($0)") } + [googleCard("old-1")])
            let result = try tick(setup.env, ["--connections", "4", "--batch-size", "20"])
            #expect(result.status == 0, "\(result.stderr)")
            #expect(try setup.fixture.walletJobRow(job).status == "completed")
            let items = try setup.fixture.walletItems(job: job)
            #expect(
                items.allSatisfy { $0.status == "completed" && $0.attempts == 1 && $0.httpStatus == 200 },
                "\(items.map { "\($0.status) \($0.attempts) \($0.reason ?? "")" }) \(result.stderr)")
            let api = setup.google.requests(kind: "api").map { "\($0["method"]!) \($0["status"]!)" }
            #expect(api.filter { $0 == "PATCH 404" }.count == 12 && api.filter { $0 == "POST 200" }.count == 12)
            #expect(api.filter { $0 == "PATCH 200" }.count == 1 && api.count == 25, "\(api)")
        }
    }

    @Test func theTokenIsMintedOnceForManyRunsAndAgainAfterA401() throws {
        try withPlatforms { setup in
            let job = try setup.fixture.walletJob(
                company: 1, template: "card", cards: (1...9).map { googleCard("card-\($0)") })
            for _ in 0..<3 {
                let result = try tick(setup.env, ["--batch-size", "2"])
                #expect(result.status == 0, "\(result.stderr)")
            }
            #expect(setup.google.requests(kind: "token").count == 1, "one token for three cron runs")
            try setup.google.revokeTokens()
            // One request at a time, so exactly one meets the revoked token.
            let result = try tick(setup.env, ["--batch-size", "3", "--connections", "1"])
            #expect(result.status == 0, "\(result.stderr)")
            #expect(setup.google.requests(kind: "token").count == 2, "minted again after the 401")
            #expect(setup.google.requests(kind: "api").filter { $0["status"] as? Int == 401 }.count == 1)
            _ = try tick(setup.env, ["--batch-size", "3"])
            #expect(try setup.fixture.walletJobRow(job).status == "completed")
            #expect(try setup.fixture.walletItems(job: job).allSatisfy { $0.attempts == 1 && $0.status == "completed" })
            #expect(setup.google.requests(kind: "token").count == 2, "the new token was kept for the next run")
        }
    }

    @Test func aKeyGoogleDoesNotKnowFailsTheJobWithGooglesWords() throws {
        try withPlatforms { setup in
            var env = setup.env
            env["WALLET_GOOGLE_KEY_FILE"] = setup.google.wrongKeyFile
            let job = try setup.fixture.walletJob(company: 1, template: "card", cards: [googleCard("card-1")])
            let result = try tick(env)
            #expect(result.status == 0, "\(result.stderr)")
            let row = try setup.fixture.walletJobRow(job)
            #expect(row.status == "failed")
            #expect(row.reason?.contains("invalid_grant: Invalid JWT Signature.") == true, "\(row.reason ?? "")")
            #expect(setup.google.requests(kind: "api").isEmpty)
            #expect(try setup.fixture.walletItems(job: job).allSatisfy { $0.attempts == 0 })
        }
    }

    @Test func permissionDeniedStopsTheJobWithOneReason() throws {
        try withPlatforms { setup in
            let job = try setup.fixture.walletJob(
                company: 1, template: "card", cards: (1...6).map { googleCard("perm403-\($0)") })
            let result = try tick(setup.env, ["--connections", "1"])
            #expect(result.status == 0, "\(result.stderr)")
            let row = try setup.fixture.walletJobRow(job)
            #expect(row.status == "failed")
            #expect(row.reason?.contains("permissionDenied") == true, "\(row.reason ?? "")")
            #expect(try setup.fixture.walletItems(job: job).allSatisfy { $0.attempts == 0 }, "no item charged")
            #expect(setup.google.requests(kind: "api").count == 1, "stopped at the first refusal")
        }
    }

    @Test func aTopicTheCertificateIsNotForFailsTheJobBeforeAnyPush() throws {
        try withPlatforms { setup in
            var env = setup.env
            env["WALLET_APNS_TOPIC"] = "pass.com.example.other"
            let job = try setup.fixture.walletJob(company: 1, template: "card", cards: [appleCard("dev1")])
            let result = try tick(env)
            #expect(result.status == 0, "\(result.stderr)")
            let row = try setup.fixture.walletJobRow(job)
            #expect(row.status == "failed")
            #expect(row.reason?.contains("WALLET_APNS_TOPIC pass.com.example.other") == true, "\(row.reason ?? "")")
            #expect(row.reason?.contains("pass.test.fanout") == true)
            #expect(setup.apns.requests.isEmpty)
        }
    }

    @Test func aP12CertificateWorksToo() throws {
        try withPlatforms { setup in
            var env = setup.env
            env["WALLET_APNS_CERT"] = nil
            env["WALLET_APNS_KEY"] = nil
            env["WALLET_APNS_P12"] = setup.apns.file("client.p12")
            env["WALLET_APNS_KEY_PASSWORD"] = "p12-secret"
            let job = try setup.fixture.walletJob(company: 1, template: "card", cards: [appleCard("dev9")])
            #expect(try tick(env).status == 0)
            #expect(try setup.fixture.walletJobRow(job).status == "completed")
            #expect(setup.apns.requests.count == 1)
        }
    }

    @Test func anItemWhoseCredentialIsNotSetFailsAloneWithTheSettingsName() throws {
        try withPlatforms { setup in
            var env = setup.env
            env["WALLET_GOOGLE_KEY_FILE"] = nil
            let job = try setup.fixture.walletJob(
                company: 1, template: "card", cards: [googleCard("card-1"), appleCard("dev1"), (nil, "huawei", "{}")])
            #expect(try tick(env).status == 0)
            let items = try setup.fixture.walletItems(job: job)
            #expect(items.map(\.status) == ["failed", "completed", "failed"])
            try #require(items.count == 3)
            #expect(items[0].reason?.contains("WALLET_GOOGLE_KEY_FILE is not set") == true, "\(items[0])")
            #expect(items[2].reason?.contains("no template for platform 'huawei'") == true, "\(items[2])")
        }
    }

    @Test func noSecretReachesLogsReportsOrLists() throws {
        try withPlatforms { setup in
            let job = try setup.fixture.walletJob(
                company: 1, template: "card", cards: [googleCard("card-1"), googleCard("perm403-x"), appleCard("dev1")])
            var outputs = [try tick(setup.env, ["--connections", "1"])]
            outputs.append(
                try runFanout(["report", "wallet", String(job), "--format", "json"], environment: setup.env))
            outputs.append(try runFanout(["jobs", "--format", "json"], environment: setup.env))
            outputs.append(try runFanout(["doctor"], environment: setup.env))
            let token = try setup.fixture.db.queryFirst("SELECT access_token FROM fanout_access_tokens")?
                .decode("access_token", as: String.self)
            let key = try String(contentsOfFile: setup.google.keyFile, encoding: .utf8)
            let keyLine = try #require(key.split(separator: "\\n").dropFirst(3).first.map(String.init))
            let text =
                outputs.map { $0.stdout + $0.stderr }.joined(separator: "\n")
                + (try setup.fixture.db.query("SELECT reason FROM bulk_wallet_api_jobs").map {
                    try $0.decodeIfPresent("reason", as: String.self) ?? ""
                }.joined())
            #expect(token != nil)
            for secret in [token ?? "never", keyLine, "key-secret", "ya29."] {
                #expect(!text.contains(secret), "a secret reached the output: \(secret.prefix(8))…")
            }
        }
    }

    /// WALLET_GOOGLE_RATE holds for all processes together: two overlapping ticks on two
    /// companies share one service account's 10 requests a second (counted at the double).
    @Test func twoOverlappingTicksShareTheCredentialsRate() throws {
        try withPlatforms { setup in
            var env = setup.env
            env["WALLET_GOOGLE_RATE"] = "10"
            let first = try setup.fixture.walletJob(
                company: 1, template: "card", cards: (1...30).map { googleCard("a-\($0)") })
            let second = try setup.fixture.walletJob(
                company: 2, template: "card", cards: (1...30).map { googleCard("b-\($0)") })
            #expect(try runTogether(2, ["wallet:process-jobs", "--batch-size", "30"], environment: env) == [0, 0])
            #expect(try setup.fixture.walletJobRow(first).status == "completed")
            #expect(try setup.fixture.walletJobRow(second).status == "completed")
            let times = setup.google.requests(kind: "api").compactMap { $0["t"] as? Double }.sorted()
            #expect(times.count == 60)
            // Any second: at most a second's worth at once (the burst) plus a second's worth of
            // rate; any three seconds: three seconds' worth plus the burst. Two processes pacing
            // alone would reach twice that.
            #expect(mostWithin(1, times) <= 21, "\(mostWithin(1, times)) in one second")
            #expect(mostWithin(3, times) <= 41, "\(mostWithin(3, times)) in three seconds")
        }
    }

    @Test func doctorChecksEachCredentialForReal() throws {
        try withPlatforms { setup in
            let good = try runFanout(["doctor"], environment: setup.env)
            #expect(good.stdout.contains("minted an access token valid"), "\(good.stdout)")
            #expect(good.stdout.contains("the certificate fits WALLET_APNS_TOPIC pass.test.fanout"))
            #expect(good.stdout.contains("wallet/card.google.http.mustache (@auth google)"))
            var env = setup.env
            env["WALLET_GOOGLE_KEY_FILE"] = setup.google.wrongKeyFile
            env["WALLET_APNS_CERT"] = setup.apns.file("expired.pem")
            env["WALLET_APNS_KEY"] = setup.apns.file("expired.key")
            let bad = try runFanout(["doctor"], environment: env)
            #expect(bad.status == 1)
            #expect(bad.stdout.contains("invalid_grant: Invalid JWT Signature."), "\(bad.stdout)")
            #expect(bad.stdout.contains("expired on"), "\(bad.stdout)")
        }
    }

    /// One push per device per job, across the batches one process runs.
    @Test func aDeviceIsPushedOnceAcrossBatches() throws {
        try withPlatforms { setup in
            let job = try setup.fixture.walletJob(
                company: 1, template: "card", cards: [appleCard("dev2"), appleCard("dev3"), appleCard("dev2")])
            let result = try tick(setup.env, ["--batch-size", "1", "--until-done"])
            #expect(result.status == 0, "\(result.stderr)")
            let items = try setup.fixture.walletItems(job: job)
            #expect(items.map(\.status) == ["completed", "completed", "completed"])
            try #require(items.count == 3)
            #expect(items[2].reason?.contains("sent for item \(items[0].id)") == true, "\(items[2])")
            #expect(setup.apns.requests.compactMap { $0["token"] as? String }.sorted() == ["dev2", "dev3"])
        }
    }

    /// APNs 429: that device waits, uncharged, a minute doubling to an hour; after six hours of
    /// it the item fails with that reason.
    @Test func aThrottledDeviceWaitsUnchargedAndGivesUpAfterSixHours() throws {
        try withPlatforms { setup in
            let job = try setup.fixture.walletJob(company: 1, template: "card", cards: [appleCard("busy1")])
            let itemSQL =
                "SELECT status, attempts, reason, next_attempt_at > NOW() AS later FROM "
                + "bulk_wallet_api_job_items WHERE bulk_wallet_api_job_id = ?"
            func item() throws -> (status: String, attempts: Int, reason: String, later: Bool) {
                let row = try #require(try setup.fixture.db.queryFirst(itemSQL, [job]))
                return (
                    try row.decode("status"), try row.decode("attempts"), try row.decodeIfPresent("reason") ?? "",
                    try row.decodeIfPresent("later", as: Bool.self) ?? false
                )
            }
            #expect(try tick(setup.env).status == 0)
            let first = try item()
            #expect(first.status == "pending" && first.attempts == 0 && first.later, "\(first)")
            #expect(first.reason.hasPrefix("Waiting: APNs 429 TooManyRequests since "), "\(first.reason)")
            #expect(first.reason.hasSuffix("; next push in 60 s"))
            // Due again (as if the minute had passed): the wait doubles, still uncharged.
            let due = "UPDATE bulk_wallet_api_job_items SET next_attempt_at = NULL WHERE bulk_wallet_api_job_id = ?"
            try setup.fixture.db.execute(due, [job])
            #expect(try tick(setup.env).status == 0)
            let second = try item()
            #expect(second.attempts == 0 && second.reason.hasSuffix("; next push in 120 s"), "\(second)")
            #expect(second.reason.prefix(60) == first.reason.prefix(60), "the same 'since'")
            // Six hours of 429s: the item fails with that reason.
            try setup.fixture.db.execute(
                "UPDATE bulk_wallet_api_job_items SET next_attempt_at = NULL, reason = ? "
                    + "WHERE bulk_wallet_api_job_id = ?",
                ["Waiting: APNs 429 TooManyRequests since 2020-01-01T00:00:00Z; next push in 3600 s", job])
            #expect(try tick(setup.env).status == 0)
            let last = try item()
            #expect(last.status == "failed", "\(last)")
            #expect(last.reason.contains("for 6 hours since 2020-01-01T00:00:00Z"))
            #expect(setup.apns.requests.count == 3)
        }
    }
}
