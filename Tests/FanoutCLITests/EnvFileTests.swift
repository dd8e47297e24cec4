import Foundation
import Testing
import TestSupport

/// `--env-file` reads a Laravel `.env` with phpdotenv's rules; real environment variables win.
@Suite(.enabled(if: TestEnvironment.hasDatabase))
struct EnvFileTests {
    @Test func laravelEnvFileWithEveryForm() throws {
        try withTestDatabase { database, _ in
            let config = database.configuration
            let prefix = String(database.name.dropLast(4))
            let suffix = String(database.name.suffix(4))
            let file = TestEnvironment.scratchDirectory.appendingPathComponent("env-\(UUID().uuidString).env")
            try """
            # Laravel .env
            APP_NAME="My App"
            export DB_HOST=\(config.host)
            DB_PORT=\(config.port)   # inline comment
            DB_PREFIX='\(prefix)'
            DB_SUFFIX=\(suffix)
            DB_DATABASE="${DB_PREFIX}${DB_SUFFIX}"
            DB_USERNAME=wrong-user-overridden-below

            DB_PASSWORD="\(config.password)"
            MAIL_FROM_NAME="Line one\\nline two"
            MULTI="first
            second"
            LITERAL='${NOT_EXPANDED}'
            """.write(to: file, atomically: true, encoding: .utf8)
            var environment: [String: String] = ["DB_USERNAME": config.user]
            if let socket = config.socket { environment["DB_SOCKET"] = socket }
            let result = try runFanout(["migrate", "--env-file", file.path], environment: environment)
            #expect(result.status == 0, "\(result.stderr)")
            #expect(result.stdout.contains("Applied 001_contract_tables.sql"))
        }
    }

    @Test func missingEnvFileExits78() throws {
        let result = try runFanout(["migrate", "--env-file", "/nonexistent/.env"])
        #expect(result.status == 78)
        #expect(result.stderr.contains("/nonexistent/.env"))
    }

    @Test func malformedEnvFileNamesTheLine() throws {
        let file = TestEnvironment.scratchDirectory.appendingPathComponent("bad-\(UUID().uuidString).env")
        try "GOOD=1\nthis line has no equals sign\n".write(to: file, atomically: true, encoding: .utf8)
        let result = try runFanout(["migrate", "--env-file", file.path])
        #expect(result.status == 78)
        #expect(result.stderr.contains("line 2"))
    }
}
