import Foundation

/// scripts/google-wallet-double.py for one test: a service-account key made for it, the token
/// endpoint that verifies what a key signs, and the Wallet objects API; stopped with the test.
public final class GoogleWalletDouble {
    public let directory: URL
    public let process: ChildProcess
    public let port: Int
    /// The key file the double trusts, and one of the same account with another key.
    public var keyFile: String { directory.appendingPathComponent("keys/service-account.json").path }
    public var wrongKeyFile: String { directory.appendingPathComponent("keys/other-service-account.json").path }
    public var apiBase: String { "http://127.0.0.1:\(port)/walletobjects/v1" }

    public init(tokenLifetime: Int = 3600) throws {
        directory = TestEnvironment.makeTemporaryDirectory("google-double")
        let script = TestEnvironment.scriptsDirectory.appendingPathComponent("google-wallet-double.py")
        let keys = directory.appendingPathComponent("keys")
        let keygen = try runProcess(
            URL(fileURLWithPath: "/usr/bin/python3"),
            [script.path, "keygen", "--out", keys.path, "--token-uri", "http://127.0.0.1:1/token"])
        guard keygen.status == 0 else { throw TestServerError(message: "google double keygen: \(keygen.stderr)") }
        let log = directory.appendingPathComponent("log")
        try FileManager.default.createDirectory(at: log, withIntermediateDirectories: true)
        let process = try ChildProcess(
            "/usr/bin/python3",
            [
                script.path, "serve", "--port", "0", "--public-key", keys.appendingPathComponent("public.pem").path,
                "--log", log.path, "--token-lifetime", String(tokenLifetime),
                "--service-account", keys.appendingPathComponent("service-account.json").path,
                "--service-account", keys.appendingPathComponent("other-service-account.json").path,
            ],
            environment: ["PATH": "/usr/bin:/bin"], stdout: directory.appendingPathComponent("out").path,
            stderr: directory.appendingPathComponent("err").path)
        self.process = process
        let portFile = log.appendingPathComponent("port")
        var found: Int?
        _ = waitUntil(seconds: 30) {
            found = (try? String(contentsOf: portFile, encoding: .utf8)).flatMap {
                Int($0.trimmingCharacters(in: .whitespacesAndNewlines))
            }
            return found != nil || !process.isRunning
        }
        guard let found else {
            process.signal(SIGKILL)
            let err = (try? String(contentsOf: directory.appendingPathComponent("err"), encoding: .utf8)) ?? ""
            port = 0
            throw TestServerError(message: "google double did not start: \(err)")
        }
        port = found
    }

    deinit {
        process.signal(SIGTERM)
        _ = process.wait(seconds: 10)  // killed if it is still running then
        try? FileManager.default.removeItem(at: directory)
    }

    /// The requests it answered, oldest first (`kind` token, api, admin; `status`; `object`).
    public var requests: [[String: Any]] {
        jsonLines(directory.appendingPathComponent("log/requests.jsonl"))
    }

    public func requests(kind: String) -> [[String: Any]] { requests.filter { $0["kind"] as? String == kind } }

    /// Makes every token issued so far invalid: the API answers 401 until a new one is minted.
    public func revokeTokens() throws {
        _ = try HTTPExchange.run("http://127.0.0.1:\(port)/_admin/revoke", method: "POST")
    }
}

/// scripts/apns-double for one suite of tests: nginx with HTTP/2 and client certificates in front
/// of a recorder that answers like APNs.
public final class APNsDouble {
    public let directory: URL
    public let port: Int
    public var base: String { "https://localhost:\(port)" }
    public var caFile: String { file("ca.pem") }
    public func file(_ name: String) -> String { directory.appendingPathComponent(name).path }

    private let double: ScriptDouble

    public init() throws {
        double = try ScriptDouble("apns-double", in: TestEnvironment.makeTemporaryDirectory("apns-double"))
        directory = double.directory
        port = double.port
    }

    /// The pushes it answered (`token`, `topic`, `protocol`, `client_dn`, `status`, `reason`).
    public var requests: [[String: Any]] { jsonLines(directory.appendingPathComponent("requests.jsonl")) }
}

/// scripts/imap-double for one test: a private dovecot on loopback with the bounce mailbox
/// (user `bounces`, password `bounce-secret`).
public final class IMAPDouble {
    public let directory: URL
    public let port: Int
    public var url: String { "imap://127.0.0.1:\(port)/INBOX" }
    private let double: ScriptDouble

    public init() throws {
        // dovecot's socket paths must stay short: a folder under /tmp.
        double = try ScriptDouble(
            "imap-double", in: URL(fileURLWithPath: "/tmp/fanout-imap-\(UUID().uuidString.prefix(8))"))
        directory = double.directory
        port = double.port
    }

    /// Delivers the files into `mailbox` (made when missing), in this order (UIDs ascending).
    public func seed(_ files: [URL], mailbox: String = "INBOX") throws {
        let result = try runProcess(
            URL(fileURLWithPath: "/bin/bash"), [double.script.path, "seed", directory.path] + files.map(\.path),
            environment: ["IMAP_MAILBOX": mailbox])
        guard result.status == 0 else { throw TestServerError(message: "seed: \(result.stderr)") }
    }
}

/// A double a bash script runs (`scripts/NAME up DIR` writes DIR/port; `down DIR` stops exactly
/// what `up` started), stopped and removed with this value.
private final class ScriptDouble {
    let script: URL
    let directory: URL
    let port: Int

    init(_ name: String, in directory: URL) throws {
        script = TestEnvironment.scriptsDirectory.appendingPathComponent(name)
        self.directory = directory
        let up = try runProcess(URL(fileURLWithPath: "/bin/bash"), [script.path, "up", directory.path])
        guard up.status == 0,
            let port = Int(
                (try? String(contentsOfFile: directory.appendingPathComponent("port").path, encoding: .utf8))?
                    .trimmingCharacters(in: .whitespacesAndNewlines) ?? "")
        else {
            _ = try? runProcess(URL(fileURLWithPath: "/bin/bash"), [script.path, "down", directory.path])
            throw TestServerError(message: "\(name) did not start: \(up.stdout) \(up.stderr)")
        }
        self.port = port
    }

    deinit {
        _ = try? runProcess(URL(fileURLWithPath: "/bin/bash"), [script.path, "down", directory.path])
        try? FileManager.default.removeItem(at: directory)
    }
}

/// The JSON objects of a JSON-lines file (a double's record of requests), oldest first.
func jsonLines(_ file: URL) -> [[String: Any]] {
    let text = (try? String(contentsOf: file, encoding: .utf8)) ?? ""
    return text.split(separator: "\n").compactMap {
        try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
    }
}
