import Foundation
import MariaDB
import Testing
import TestSupport

@Suite(.enabled(if: TestEnvironment.hasDatabase))
struct EnqueueCommandTests {
    func file(_ text: String) throws -> String {
        let url = TestEnvironment.scratchDirectory.appendingPathComponent("enqueue-\(UUID().uuidString).csv")
        try Data(text.utf8).write(to: url)
        return url.path
    }

    func migrated(_ body: (JobFixture) throws -> Void) throws {
        try withTestDatabase { database, db in try body(try JobFixture(database: database, db: db)) }
    }

    @Test func emailCSVWithBOMQuotesCRLFAndExtraColumns() throws {
        try migrated { fixture in
            let csv = try file(
                "\u{FEFF}email,name,company,note\r\n"
                    + "a@example.test,\"Lovelace, Ada\",Engines,\"She said \"\"hi\"\"\r\nover two lines\"\r\n"
                    + "b@example.test,,Other,\r\n"
            )
            let result = try runFanout(
                ["enqueue", "email", "--company", "7", "--template", "business-card", "--recipients", csv],
                environment: fixture.database.environment)
            #expect(result.status == 0, "\(result.stderr)")
            let job = try #require(UInt64(result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)))
            let rows = try fixture.db.query(
                "SELECT email, name, data FROM bulk_email_job_items WHERE bulk_email_job_id = ? ORDER BY id", [job])
            #expect(rows.count == 2)
            #expect(try rows[0].decode("name", as: String.self) == "Lovelace, Ada")
            let data =
                try JSONSerialization.jsonObject(with: Data(try rows[0].decode("data", as: String.self).utf8))
                as? [String: String]
            #expect(data == ["company": "Engines", "note": "She said \"hi\"\r\nover two lines"])
            #expect(rows[1]["name"] == .null)
            let jobRow = try fixture.job(job)
            #expect(jobRow.status == "pending")
            #expect(jobRow.total == 2)
        }
    }

    @Test func badRowsAreListedAndNothingIsCreated() throws {
        try migrated { fixture in
            let csv = try file("email,name\nok@example.test,A\nnot-an-address,B\nc@example.test,C,extra\n")
            let result = try runFanout(
                ["enqueue", "email", "--company", "1", "--template", "t", "--recipients", csv],
                environment: fixture.database.environment)
            #expect(result.status == 1)
            #expect(result.stderr.contains("line 3: invalid email address"))
            #expect(result.stderr.contains("line 4: 3 fields"))
            #expect(result.stderr.contains("nothing created"))
            #expect(
                try fixture.db.queryFirst("SELECT COUNT(*) AS n FROM bulk_email_jobs")?.decode("n", as: Int.self) == 0)
            let skipped = try runFanout(
                ["enqueue", "email", "--company", "1", "--template", "t", "--recipients", csv, "--skip-invalid"],
                environment: fixture.database.environment)
            #expect(skipped.status == 0, "\(skipped.stderr)")
            #expect(
                try fixture.db.queryFirst("SELECT COUNT(*) AS n FROM bulk_email_job_items")?.decode("n", as: Int.self)
                    == 1)
        }
    }

    @Test(arguments: [
        ("name\nA\n", "no 'email' column"),
        ("email\n\"unterminated@example.test\n", "not closed"),
        ("email\nab\"c@example.test\n", "quote inside an unquoted field"),
        ("", "empty"),
    ])
    func malformedFilesAreRefusedWithAReason(content: String, expected: String) throws {
        try migrated { fixture in
            let result = try runFanout(
                ["enqueue", "email", "--company", "1", "--template", "t", "--recipients", try file(content)],
                environment: fixture.database.environment)
            #expect(result.status == 1)
            #expect(result.stderr.contains(expected), "\(result.stderr)")
            #expect(
                try fixture.db.queryFirst("SELECT COUNT(*) AS n FROM bulk_email_jobs")?.decode("n", as: Int.self) == 0)
        }
    }

    @Test func walletCards() throws {
        try migrated { fixture in
            let csv = try file("card_id,platform,holder_name\n12,google,Ada\n13,apple,Grace\n")
            let result = try runFanout(
                ["enqueue", "wallet", "--company", "2", "--template", "generic", "--cards", csv],
                environment: fixture.database.environment)
            #expect(result.status == 0, "\(result.stderr)")
            let rows = try fixture.db.query(
                "SELECT card_id, platform, JSON_VALUE(data, '$.holder_name') AS holder "
                    + "FROM bulk_wallet_api_job_items ORDER BY id"
            )
            #expect(try rows.map { try $0.decode("card_id", as: UInt64.self) } == [12, 13])
            #expect(try rows.map { try $0.decode("holder", as: String.self) } == ["Ada", "Grace"])
            let bad = try runFanout(
                [
                    "enqueue", "wallet", "--company", "2", "--template", "generic", "--cards",
                    try file("card_id\nabc\n"),
                ], environment: fixture.database.environment)
            #expect(bad.status == 1)
            #expect(bad.stderr.contains("not a whole number"))
            let wrongOption = try runFanout(
                ["enqueue", "wallet", "--company", "2", "--template", "g", "--recipients", csv],
                environment: fixture.database.environment)
            #expect(wrongOption.status == 64)
            // A missing input file is EX_NOINPUT, with the file named.
            let missing = try runFanout(
                ["enqueue", "email", "--company", "2", "--template", "g", "--recipients", "/nonexistent/list.csv"],
                environment: fixture.database.environment)
            #expect(missing.status == 66)
            #expect(missing.stderr == "fanout: cannot read /nonexistent/list.csv: No such file or directory\n")
        }
    }
}
