import Foundation
import MariaDB
import Testing
import TestSupport

/// The project's service scripts next to a MariaDB they did not start (a developer's or an
/// operator's, on the same port): they refuse to start over it and never stop it.
@Suite(.enabled(if: TestEnvironment.hasDatabase))
struct ServiceScriptTests {
    @Test func servicesRefuseAForeignServerOnTheirPortAndLeaveItRunning() throws {
        try withPrivateMariaDB("foreign-mariadb") { foreign in
            try refuseAndLeave(foreign)
        }
    }

    func refuseAndLeave(_ foreign: PrivateMariaDB) throws {
        let port = foreign.port
        // A checkout of its own (the scripts keep their state in the checkout's .run), with every
        // other service on a free port.
        let checkout = TestEnvironment.makeTemporaryDirectory("checkout")
        try FileManager.default.copyItem(
            at: TestEnvironment.scriptsDirectory, to: checkout.appendingPathComponent("scripts"))
        let services = checkout.appendingPathComponent("scripts/services")
        var env = ["FANOUT_SERVICES_DB_PORT": String(port)]
        for name in ["SMTP", "SMTP_AUTH", "HTTP", "HTTPS"] {
            env["FANOUT_SERVICES_\(name)_PORT"] = String(try unusedLocalPort())
        }
        let up = try runProcess(services, ["up"], environment: env, inheritEnvironment: true)
        #expect(up.status != 0)
        #expect(up.stderr.contains("port \(port) (db) on 127.0.0.1 is in use by another process"), "\(up.stderr)")
        let down = try runProcess(services, ["down"], environment: env, inheritEnvironment: true)
        #expect(down.status == 0, "\(down.stderr)")

        let connection = try Connection(foreign.configuration)
        #expect(try connection.queryFirst("SELECT 1 AS one")?.decode("one", as: Int.self) == 1)
        connection.close()
    }
}
