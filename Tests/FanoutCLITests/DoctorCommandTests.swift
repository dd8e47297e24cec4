import Foundation
import Testing
import TestSupport

@Suite(.enabled(if: TestEnvironment.hasDatabase && TestEnvironment.hasServers))
struct DoctorCommandTests {
    func environment(_ database: TestDatabase) throws -> [String: String] {
        var env = database.environment
        env["MAIL_HOST"] = "localhost"
        env["MAIL_PORT"] = String(TestEnvironment.smtpAuthPort)
        env["MAIL_ENCRYPTION"] = "tls"
        env["MAIL_USERNAME"] = "fanout"
        env["MAIL_PASSWORD"] = "smtp-secret"
        env["MAIL_FROM_ADDRESS"] = "sender@example.test"
        env["FANOUT_SMTP_CA_FILE"] = TestEnvironment.tlsCertificate
        env["FANOUT_TEMPLATES"] = TestEnvironment.repositoryRoot.appendingPathComponent("templates").path
        env["WALLET_BASE_URL"] = TestEnvironment.httpURL
        env["WALLET_API_TOKEN"] = "tok-very-secret"
        return env
    }

    @Test func allChecksPassOnAMigratedDatabaseAndSendNothing() throws {
        try withTestDatabase { database, db in
            _ = try JobFixture(database: database, db: db)
            let result = try runFanout(["doctor"], environment: try environment(database))
            #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
            #expect(result.stdout.contains("ok   schema"))
            #expect(result.stdout.contains("STARTTLS, AUTH ok"))
            #expect(result.stdout.contains("ok   template   email/business-card"))
            #expect(result.stdout.contains("ok   wallet"))
            #expect(result.stdout.contains("MAIL_PASSWORD=****"))
            #expect(!result.stdout.contains("smtp-secret"))
            #expect(!result.stdout.contains("tok-very-secret"))
            #expect(!result.stdout.contains(database.configuration.password))
        }
    }

    @Test func theSMTPCheckSendsNothing() throws {
        try withTestDatabase { database, db in
            _ = try JobFixture(database: database, db: db)
            let smtp = try TestServer.smtp()
            var env = try environment(database)
            env["MAIL_HOST"] = "127.0.0.1"
            env["MAIL_PORT"] = String(smtp.port)
            env["MAIL_ENCRYPTION"] = "null"
            env["MAIL_USERNAME"] = nil
            env["MAIL_PASSWORD"] = nil
            let result = try runFanout(["doctor"], environment: env)
            #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
            #expect(smtp.connectionCount == 1)
            #expect(smtp.messageFiles.isEmpty)
        }
    }

    @Test func failuresAreExplainedAndExitNonZero() throws {
        try withTestDatabase { database, _ in
            var env = try environment(database)
            env["MAIL_PASSWORD"] = "wrong-pass-42"
            let result = try runFanout(["doctor"], environment: env)
            #expect(result.status == 1)
            #expect(result.stdout.contains("FAIL schema     not migrated: run 'fanout migrate'"))
            #expect(result.stdout.contains("FAIL smtp"))
            #expect(result.stdout.contains("535"))
            #expect(!result.stdout.contains("wrong-pass-42"))
        }
    }
}
