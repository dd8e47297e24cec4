import Foundation
import MariaDB
import Testing
import TestSupport

/// Restarts a private MariaDB of its own (not the shared one other tests use).
@Suite(.enabled(if: TestEnvironment.hasDatabase))
struct ServerRestartTests {
    @Test func restartMidSessionSurfacesAsLostConnection() throws {
        try withPrivateMariaDB("mariadb-restart") { server in
            let db = try Connection(server.configuration)
            try db.execute("CREATE TABLE t (id INT PRIMARY KEY)")
            try db.execute("INSERT INTO t VALUES (?)", [1])

            let stop = try server.stop()
            #expect(stop.status == 0, "\(stop.stderr)")
            let lost = #expect(throws: MariaDBError.self) { try db.query("SELECT id FROM t") }
            #expect(lost?.code == .connectionLost)
            #expect(lost?.number == 2006 || lost?.number == 2013)
            // No silent reconnect: the old connection stays broken even once the server is back.
            let again = try server.start()
            #expect(again.status == 0, "\(again.stderr)")
            #expect(throws: MariaDBError.self) { try db.query("SELECT id FROM t") }
            let fresh = try Connection(server.configuration)
            #expect(try fresh.queryFirst("SELECT id FROM t")?.decode("id", as: Int.self) == 1)
        }
    }
}
