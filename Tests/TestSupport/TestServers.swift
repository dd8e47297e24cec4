import Foundation

/// A server from `scripts/` started by one test for itself, on a port the OS picks, with its own
/// folder for what it receives.
public final class TestServer: @unchecked Sendable {
    // Sendable: every stored property is set once in init and only read afterwards, and
    // ChildProcess is Sendable.
    public let directory: URL
    public let port: Int
    private let process: ChildProcess

    /// Starts `script` with `arguments`, where `{dir}` stands for the server's own folder, and
    /// waits for it to write its port to `{dir}/port`.
    public init(script: String, arguments: [String], name: String) throws {
        let directory = TestEnvironment.makeTemporaryDirectory(name)
        self.directory = directory
        let log = directory.appendingPathComponent("server.log")
        let process = try ChildProcess(
            "/usr/bin/python3",
            [TestEnvironment.scriptsDirectory.appendingPathComponent(script).path]
                + arguments.map { $0.replacingOccurrences(of: "{dir}", with: directory.path) },
            environment: ["PATH": "/usr/bin:/bin"],
            stdout: log.path,
            stderr: log.path + ".err"
        )
        self.process = process
        let portFile = directory.appendingPathComponent("port")
        var port = 0
        _ = waitUntil(seconds: 20) {
            if let text = try? String(contentsOf: portFile, encoding: .utf8),
                let value = Int(text.trimmingCharacters(in: .whitespacesAndNewlines))
            {
                port = value
                return true
            }
            return !process.isRunning
        }
        guard port > 0 else {
            process.signal(SIGKILL)
            process.wait()
            let output = (try? String(contentsOfFile: log.path + ".err", encoding: .utf8)) ?? ""
            throw TestServerError(message: "\(script) did not start: \(output)")
        }
        self.port = port
    }

    /// An SMTP server (`scripts/smtp-server.py`) keeping messages in its own folder.
    public static func smtp(_ extraArguments: [String] = []) throws -> TestServer {
        try TestServer(
            script: "smtp-server.py",
            arguments: ["--host", "127.0.0.1", "--port", "0", "--maildir", "{dir}"] + extraArguments, name: "smtp")
    }

    /// An HTTP server (`scripts/http-server.py`) keeping `/collect` requests in its own folder.
    public static func http(_ extraArguments: [String] = []) throws -> TestServer {
        try TestServer(
            script: "http-server.py",
            arguments: ["--host", "127.0.0.1", "--port", "0", "--state", "{dir}"] + extraArguments, name: "http")
    }

    deinit { stop() }

    public func stop() {
        guard process.isRunning else { return }
        process.signal(SIGTERM)
        if !waitUntil(seconds: 5, { !process.isRunning }) {
            process.signal(SIGKILL)
        }
        process.wait()
    }

    /// Lines in `connections.log`: one per TCP connection the server accepted.
    public var connectionCount: Int {
        let text = (try? String(contentsOf: directory.appendingPathComponent("connections.log"), encoding: .utf8)) ?? ""
        return text.split(separator: "\n").count
    }

    /// An SMTP server's wait before it accepts each message from now on (its `--delay`, changed mid-run).
    public func setMessageDelay(seconds: Double) throws {
        try "\(seconds)\n".write(to: directory.appendingPathComponent("delay"), atomically: true, encoding: .utf8)
    }

    /// The `.eml` files received so far, oldest first.
    public var messageFiles: [URL] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
        return names.filter { $0.hasSuffix(".eml") }.sorted().map { directory.appendingPathComponent($0) }
    }
}

public struct TestServerError: Error, CustomStringConvertible {
    public var message: String
    public init(message: String) { self.message = message }
    public var description: String { message }
}
