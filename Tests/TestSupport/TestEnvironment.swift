import Foundation
import MariaDB

/// Settings of the test servers, from `FANOUT_TEST_*` variables (printed by `scripts/services env`).
///
/// When `FANOUT_TEST_REQUIRE_SERVICES=1` (as `.ci/run` sets it), a test that needs a server is
/// always enabled, so a missing server is a failure, never a skip.
public enum TestEnvironment {
    public static func value(_ name: String) -> String? {
        guard let value = ProcessInfo.processInfo.environment[name], !value.isEmpty else { return nil }
        return value
    }

    public static var requireServices: Bool { value("FANOUT_TEST_REQUIRE_SERVICES") == "1" }

    /// Whether tests that need MariaDB should run.
    public static var hasDatabase: Bool {
        requireServices || value("FANOUT_TEST_DB_PORT") != nil || value("FANOUT_TEST_DB_SOCKET") != nil
    }
    /// Whether tests that need the shared SMTP/HTTP test servers should run.
    public static var hasServers: Bool { requireServices || value("FANOUT_TEST_SMTP_PORT") != nil }
    /// Whether tests that start their own servers from `scripts/` should run (python3 + aiosmtpd).
    public static var canStartServers: Bool {
        requireServices || FileManager.default.isExecutableFile(atPath: "/usr/bin/python3")
    }

    /// The repository's root folder, found from this file's path.
    public static let repositoryRoot: URL = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        return url
    }()

    public static var scriptsDirectory: URL {
        value("FANOUT_TEST_SCRIPTS").map { URL(fileURLWithPath: $0) }
            ?? repositoryRoot.appendingPathComponent("scripts")
    }

    /// Where tests may write files: `.run/tests` in the repository.
    public static var scratchDirectory: URL {
        let url = repositoryRoot.appendingPathComponent(".run/tests")
        try? FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    /// A fresh empty folder under the scratch folder.
    public static func makeTemporaryDirectory(_ prefix: String) -> URL {
        let url = scratchDirectory.appendingPathComponent("\(prefix)-\(UUID().uuidString.prefix(8))")
        try? FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    /// The database server's settings, as the test user without a database selected.
    public static var database: ConnectionConfiguration {
        ConnectionConfiguration(
            host: value("FANOUT_TEST_DB_HOST") ?? "127.0.0.1",
            port: UInt32(value("FANOUT_TEST_DB_PORT") ?? "33406") ?? 33406,
            socket: value("FANOUT_TEST_DB_SOCKET"),
            user: value("FANOUT_TEST_DB_USER") ?? "fanout",
            password: value("FANOUT_TEST_DB_PASSWORD") ?? "fanout-secret",
            database: nil,
            connectTimeout: 5,
            readTimeout: 30,
            writeTimeout: 30
        )
    }

    public static var smtpHost: String { value("FANOUT_TEST_SMTP_HOST") ?? "127.0.0.1" }
    public static var smtpPort: Int { Int(value("FANOUT_TEST_SMTP_PORT") ?? "2526") ?? 2526 }
    public static var smtpAuthPort: Int { Int(value("FANOUT_TEST_SMTP_AUTH_PORT") ?? "2527") ?? 2527 }
    public static var httpURL: String { value("FANOUT_TEST_HTTP_URL") ?? "http://127.0.0.1:18480" }
    public static var httpsURL: String { value("FANOUT_TEST_HTTPS_URL") ?? "https://localhost:18443" }
    public static var tlsCertificate: String {
        value("FANOUT_TEST_TLS_CERT") ?? repositoryRoot.appendingPathComponent(".run/services/tls/cert.pem").path
    }

    /// The built `fanout` binary (next to the test bundle, or `FANOUT_TEST_BINARY`).
    public static var fanoutBinary: URL {
        if let path = value("FANOUT_TEST_BINARY") { return URL(fileURLWithPath: path) }
        return builtBinary("fanout")
    }

    /// The built `fanout-web` binary (next to the test bundle, or `FANOUT_TEST_WEB_BINARY`).
    public static var fanoutWebBinary: URL {
        if let path = value("FANOUT_TEST_WEB_BINARY") { return URL(fileURLWithPath: path) }
        return builtBinary("fanout-web")
    }

    private static func builtBinary(_ name: String) -> URL {
        let bundle = Bundle.main.bundleURL
        let candidates = [
            bundle.deletingLastPathComponent().appendingPathComponent(name),
            bundle.appendingPathComponent(name),
            repositoryRoot.appendingPathComponent(".build/debug/\(name)"),
        ]
        return candidates.first { FileManager.default.isExecutableFile(atPath: $0.path) } ?? candidates.last!
    }
}

/// A TCP port on 127.0.0.1 nothing listens on now (the system picked it for a moment), for a
/// server a test starts later on purpose. A fixed random number may be an ephemeral port in use.
public func unusedLocalPort() throws -> Int {
    let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard descriptor >= 0 else { throw TestServerError(message: "socket: \(errno)") }
    defer { close(descriptor) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = 0
    let bound = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            bind(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
        }
    }
    guard bound == 0 else { throw TestServerError(message: "bind: \(errno)") }
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(descriptor, $0, &length) }
    }
    return Int(UInt16(bigEndian: address.sin_port))
}
