import Foundation
import MariaDB
import Testing
import TestSupport

/// Restarts a private MariaDB of its own (not the shared one other tests use).
@Suite(.enabled(if: TestEnvironment.hasDatabase))
struct ServerRestartTests {
    @Test func restartMidSessionSurfacesAsLostConnection() throws {
        let directory = TestEnvironment.makeTemporaryDirectory("mariadb-restart")
        let port = String(34_000 + Int.random(in: 0..<900))
        let script = TestEnvironment.scriptsDirectory.appendingPathComponent("mariadb-instance")
        let start = try runProcess(script, ["start", directory.path, port], inheritEnvironment: true)
        #expect(start.status == 0, "\(start.stderr)")
        defer { _ = try? runProcess(script, ["stop", directory.path], inheritEnvironment: true) }

        let configuration = ConnectionConfiguration(
            host: "127.0.0.1", port: UInt32(port)!, user: "fanout", password: "fanout-secret",
            database: "fanout", connectTimeout: 3, readTimeout: 5, writeTimeout: 5
        )
        let db = try Connection(configuration)
        try db.execute("CREATE TABLE t (id INT PRIMARY KEY)")
        try db.execute("INSERT INTO t VALUES (?)", [1])

        let stop = try runProcess(script, ["stop", directory.path], inheritEnvironment: true)
        #expect(stop.status == 0, "\(stop.stderr)")
        let lost = #expect(throws: MariaDBError.self) { try db.query("SELECT id FROM t") }
        #expect(lost?.code == .connectionLost)
        #expect(lost?.number == 2006 || lost?.number == 2013)
        // No silent reconnect: the old connection stays broken even once the server is back.
        let again = try runProcess(script, ["start", directory.path, port], inheritEnvironment: true)
        #expect(again.status == 0, "\(again.stderr)")
        #expect(throws: MariaDBError.self) { try db.query("SELECT id FROM t") }
        let fresh = try Connection(configuration)
        #expect(try fresh.queryFirst("SELECT id FROM t")?.decode("id", as: Int.self) == 1)
    }
}
