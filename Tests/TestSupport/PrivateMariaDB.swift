import Foundation
import MariaDB

/// A MariaDB of a test's own (`scripts/mariadb-instance` in a temporary folder, on a port of the
/// given range), for tests that stop and start the server: the shared one stays untouched.
public struct PrivateMariaDB: Sendable {
    public let directory: URL
    public let port: Int
    private var script: URL { TestEnvironment.scriptsDirectory.appendingPathComponent("mariadb-instance") }

    /// Starts the server (again); the status of `mariadb-instance start`.
    @discardableResult
    public func start() throws -> ProcessResult {
        try runProcess(script, ["start", directory.path, String(port)], inheritEnvironment: true)
    }

    /// Stops the server; the status of `mariadb-instance stop`.
    @discardableResult
    public func stop() throws -> ProcessResult {
        try runProcess(script, ["stop", directory.path], inheritEnvironment: true)
    }

    /// Its `fanout` database, as the `fanout` user.
    public var configuration: ConnectionConfiguration {
        ConnectionConfiguration(
            host: "127.0.0.1", port: UInt32(port), user: "fanout", password: "fanout-secret", database: "fanout",
            connectTimeout: 3, readTimeout: 5, writeTimeout: 5)
    }

    /// Settings for the `fanout` binary on this server and `smtp`, with the test templates, after
    /// `fanout migrate` ran on it.
    public func migratedEnvironment(smtp: TestServer) throws -> [String: String] {
        let env = mailEnvironment(database: database, smtp: smtp, templates: try makeTestTemplates())
        let migrate = try runFanout(["migrate"], environment: env)
        guard migrate.status == 0 else { throw TestServerError(message: "migrate failed: \(migrate.stderr)") }
        return env
    }

    /// A fixture on its `fanout` database (migrated), over a new connection.
    public func fixture() throws -> JobFixture {
        try JobFixture(database: database, db: Connection(configuration))
    }

    /// Its `fanout` database; `environment` points the `fanout` binary at it.
    public var database: TestDatabase { TestDatabase(name: "fanout", configuration: configuration) }
}

/// Starts a private MariaDB on a port nothing uses, runs `body`, and stops it.
public func withPrivateMariaDB<T>(_ label: String, _ body: (PrivateMariaDB) throws -> T) throws -> T {
    let server = PrivateMariaDB(directory: TestEnvironment.makeTemporaryDirectory(label), port: try unusedLocalPort())
    let started = try server.start()
    guard started.status == 0 else {
        throw TestServerError(message: "mariadb-instance start failed: \(started.stderr)")
    }
    defer { _ = try? server.stop() }
    return try body(server)
}
