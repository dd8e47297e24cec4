import Foundation
import MariaDB
import Testing
import TestSupport

/// Conflicts with the host application's own transactions are a normal outcome: the tick tries
/// the statement again instead of ending with an error (on Galera the same error, 1213, is a
/// certification failure).
@Suite(.enabled(if: TestEnvironment.hasDatabase && TestEnvironment.canStartServers))
struct ConflictTests {
    @Test func aLockWaitTimeoutAgainstTheHostsTransactionIsTriedAgain() throws {
        try withPrivateMariaDB("mariadb-conflict") { server in
            let smtp = try TestServer.smtp([])
            let env = try server.migratedEnvironment(smtp: smtp)
            let admin = try Connection(server.configuration)
            // Every new session waits at most a second for a row lock (the default is 50 s).
            try admin.execute("SET GLOBAL innodb_lock_wait_timeout = 1")
            let fixture = try server.fixture()
            let job = try fixture.emailJob(company: 1, count: 20)
            // The host holds the job's row for 2.5 s, as a long transaction of its own would.
            let host = try Connection(server.configuration)
            try host.execute("START TRANSACTION")
            _ = try host.query("SELECT id FROM bulk_email_jobs WHERE id = ? FOR UPDATE", [job])
            let output = TestEnvironment.scratchDirectory.appendingPathComponent("conflict-\(UUID().uuidString)")
            let tick = try startFanout(["emails:process-jobs", "-v"], environment: env, output: output)
            Thread.sleep(forTimeInterval: 2.5)
            try host.execute("COMMIT")
            let status = tick.wait()
            let log = (try? String(contentsOfFile: output.path + ".err", encoding: .utf8)) ?? ""
            #expect(status == 0, "\(log)")
            #expect(log.contains("conflict, trying again"), "the tick met the lock and tried again: \(log)")
            #expect(try fixture.job(job).status == "completed")
            #expect(smtp.messageFiles.count == 20)
            host.close()
            admin.close()
        }
    }
}
