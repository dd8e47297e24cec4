import Foundation
import MariaDB

/// The private 3-node Galera cluster `scripts/services galera up` starts (FANOUT_TEST_GALERA_PORTS).
public enum GaleraCluster {
    /// The nodes' SQL ports, node 1 first.
    public static var ports: [Int] {
        (TestEnvironment.value("FANOUT_TEST_GALERA_PORTS") ?? "").split(separator: ",").compactMap { Int($0) }
    }

    /// Whether the Galera tests run: the cluster is up, or every server is required (CI).
    public static var isAvailable: Bool { TestEnvironment.requireServices || ports.count == 3 }

    /// Node `n`'s settings (1-based), as the test user, without a database.
    public static func node(_ n: Int) -> ConnectionConfiguration {
        var configuration = TestEnvironment.database
        configuration.socket = nil
        configuration.host = "127.0.0.1"
        configuration.port = UInt32(ports[n - 1])
        return configuration
    }

    /// The `DB_*` settings that point the binary at `database` through node `n`, or through a host
    /// list (`DB_HOST` as a user writes it) when `hosts` is given.
    public static func environment(database: String, node n: Int, hosts: String? = nil) -> [String: String] {
        var configuration = node(n)
        configuration.database = database
        var env = TestDatabase(name: database, configuration: configuration).environment
        if let hosts { env["DB_HOST"] = hosts }
        return env
    }

    /// A host application's write, tried again on a certification conflict (1213) as hosts do on
    /// Galera (Laravel's `DB::transaction(…, attempts)`): the tick's own writes to the same job row
    /// on another node can win the race.
    @discardableResult
    public static func hostWrite(_ db: Connection, _ sql: String, _ parameters: [any SQLEncodable]) throws -> UInt64 {
        var attempt = 1
        while true {
            do {
                return try db.execute(sql, parameters).affectedRows
            } catch {
                guard error.isConflict, attempt < 5 else { throw error }
                attempt += 1
            }
        }
    }

    /// Runs `scripts/services galera ARGUMENTS` (kill-node N, start-node N).
    public static func services(_ arguments: [String]) throws -> ProcessResult {
        try runProcess(
            TestEnvironment.scriptsDirectory.appendingPathComponent("services"), ["galera"] + arguments,
            inheritEnvironment: true)
    }
}

/// A fresh database created through node 1 (Galera replicates it to the others), migrated, with a
/// fixture connected through node 1 (reads causal: `wsrep_sync_wait`); dropped afterwards.
public func withGaleraDatabase<T>(_ body: (JobFixture) throws -> T) throws -> T {
    guard GaleraCluster.ports.count == 3 else {
        throw TestServerError(
            message: "FANOUT_TEST_GALERA_PORTS is not set: start the cluster with scripts/services galera up")
    }
    let admin = try Connection(GaleraCluster.node(1))
    let name = "fanout_galera_\(UUID().uuidString.prefix(12).lowercased().replacingOccurrences(of: "-", with: ""))"
    try admin.execute("CREATE DATABASE `\(name)` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
    defer {
        _ = try? admin.execute("DROP DATABASE IF EXISTS `\(name)`")
        admin.close()
    }
    var configuration = GaleraCluster.node(1)
    configuration.database = name
    let connection = try Connection(configuration)
    defer { connection.close() }
    // The test reads what ticks on other nodes committed, as a host application checking a job
    // would: causal reads, or node 1 may not have applied the last write sets yet.
    try connection.execute("SET SESSION wsrep_sync_wait = 1")
    let fixture = try JobFixture(database: TestDatabase(name: name, configuration: configuration), db: connection)
    return try body(fixture)
}
