import Foundation
import MariaDB

/// A fresh database on the test server, dropped after use.
public struct TestDatabase: Sendable {
    public let name: String
    public let configuration: ConnectionConfiguration

    /// A new connection to this database.
    public func connect() throws -> Connection {
        try Connection(configuration)
    }

    /// The `DB_*` settings that point the `fanout` binary at this database.
    public var environment: [String: String] {
        var env = [
            "DB_HOST": configuration.host,
            "DB_PORT": String(configuration.port),
            "DB_DATABASE": name,
            "DB_USERNAME": configuration.user,
            "DB_PASSWORD": configuration.password,
        ]
        if let socket = configuration.socket { env["DB_SOCKET"] = socket }
        return env
    }
}

/// Creates a database with a unique name, runs `body` with it and a connection to it, and drops it.
public func withTestDatabase<T>(_ body: (TestDatabase, Connection) throws -> T) throws -> T {
    let admin = try Connection(TestEnvironment.database)
    let name = "fanout_test_\(UUID().uuidString.prefix(12).lowercased().replacingOccurrences(of: "-", with: ""))"
    try admin.execute("CREATE DATABASE `\(name)` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
    defer {
        _ = try? admin.execute("DROP DATABASE IF EXISTS `\(name)`")
        admin.close()
    }
    var configuration = TestEnvironment.database
    configuration.database = name
    let database = TestDatabase(name: name, configuration: configuration)
    let connection = try Connection(configuration)
    defer { connection.close() }
    return try body(database, connection)
}
