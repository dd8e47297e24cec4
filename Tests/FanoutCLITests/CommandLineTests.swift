import Foundation
import MariaDB
import Testing
import TestSupport

struct CommandLineTests {
    @Test func helpListsTheCommands() throws {
        let result = try runFanout(["--help"])
        #expect(result.status == 0)
        #expect(result.stdout.contains("migrate"))
        #expect(result.stdout.contains("USAGE"))
    }

    @Test(arguments: [["--no-such-option"], ["migrate", "--bogus"], ["no-such-command"]])
    func unknownInputExits64WithOneLine(arguments: [String]) throws {
        let result = try runFanout(arguments)
        #expect(result.status == 64)
        let lines = result.stderr.split(separator: "\n")
        #expect(lines.count == 1, "\(result.stderr)")
        #expect(lines.first?.hasPrefix("fanout: ") == true)
        #expect(result.stdout.isEmpty)
    }

    @Test func missingDatabaseSettingsExit78() throws {
        let result = try runFanout(["migrate"], environment: ["DB_USERNAME": "x"])
        #expect(result.status == 78)
        #expect(result.stderr.contains("DB_DATABASE"))
        #expect(result.stderr.split(separator: "\n").count == 1)
    }

    @Test func unreachableDatabaseExits69WithoutThePassword() throws {
        let result = try runFanout(
            ["migrate"],
            environment: [
                "DB_HOST": "127.0.0.1", "DB_PORT": "1", "DB_DATABASE": "x", "DB_USERNAME": "u",
                "DB_PASSWORD": "s3cret-pw-value",
            ])
        #expect(result.status == 69)
        #expect(result.stderr.split(separator: "\n").count == 1)
        #expect(!result.stderr.contains("s3cret-pw-value"))
    }
}

@Suite(.enabled(if: TestEnvironment.hasDatabase))
struct MigrateCommandTests {
    @Test func migrateTwiceThenNothingToDo() throws {
        try withTestDatabase { database, db in
            let first = try runFanout(["migrate"], environment: database.environment)
            #expect(first.status == 0, "\(first.stderr)")
            #expect(first.stdout.contains("Applied 001_contract_tables.sql"))
            let second = try runFanout(["migrate"], environment: database.environment)
            #expect(second.status == 0, "\(second.stderr)")
            #expect(second.stdout.contains("Up to date"))
            let count = try db.queryFirst("SELECT COUNT(*) AS n FROM fanout_migrations")?.decode("n", as: Int.self)
            #expect(count == 15)
        }
    }

    @Test func wrongPasswordExits69() throws {
        try withTestDatabase { database, _ in
            var environment = database.environment
            environment["DB_PASSWORD"] = "definitely-wrong-pw"
            let result = try runFanout(["migrate"], environment: environment)
            #expect(result.status == 69)
            #expect(result.stderr.contains("1045"))
            #expect(!result.stderr.contains("definitely-wrong-pw"))
        }
    }
}
