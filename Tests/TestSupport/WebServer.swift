import Foundation

/// The built `fanout-web`, started on a free loopback port for one test and stopped after it.
public final class WebServer {
    public let process: ChildProcess
    public let port: Int
    public let output: URL
    public var base: String { "http://127.0.0.1:\(port)" }

    /// Starts the server and waits until `/healthz` answers (whatever it says).
    public init(_ arguments: [String] = [], environment: [String: String], port: Int? = nil) throws {
        self.port = try port ?? unusedLocalPort()
        output = TestEnvironment.scratchDirectory.appendingPathComponent("web-\(UUID().uuidString)")
        var env = ["PATH": "/usr/bin:/bin:/usr/sbin:/sbin"]
        for (key, value) in environment { env[key] = value }
        process = try ChildProcess(
            TestEnvironment.fanoutWebBinary.path, ["--listen", "127.0.0.1:\(self.port)"] + arguments,
            environment: env,
            directory: TestEnvironment.repositoryRoot.path, stdout: output.path + ".out",
            stderr: output.path + ".err")
        let url = "\(base)/healthz"
        guard waitUntil(seconds: 30, { (try? HTTPExchange.run(url)) != nil || !process.isRunning }), process.isRunning
        else {
            process.signal(SIGKILL)
            throw TestServerError(message: "fanout-web did not start: \(log)")
        }
    }

    deinit {
        if process.isRunning {
            process.signal(SIGKILL)
            _ = process.wait()
        }
    }

    /// What the server wrote to standard error.
    public var log: String { (try? String(contentsOfFile: output.path + ".err", encoding: .utf8)) ?? "" }

    /// A request to a path of this server.
    public func request(
        _ path: String, method: String = "GET", form: [String: String]? = nil, headers: [String: String] = [:],
        user: (String, String)? = nil
    ) throws -> HTTPExchange {
        try HTTPExchange.run(base + path, method: method, form: form, headers: headers, user: user)
    }
}

/// One HTTP request and its answer, made by the curl program.
public struct HTTPExchange: Sendable {
    public var status: Int
    /// Header names in lower case.
    public var headers: [String: String]
    public var body: String

    public static func run(
        _ url: String, method: String = "GET", form: [String: String]? = nil, headers: [String: String] = [:],
        user: (String, String)? = nil
    ) throws -> HTTPExchange {
        let stem = TestEnvironment.scratchDirectory.appendingPathComponent("http-\(UUID().uuidString)").path
        defer {
            unlink(stem + ".body")
            unlink(stem + ".head")
        }
        var arguments = [
            "-sS", "--max-time", "60", "-o", stem + ".body", "-D", stem + ".head", "-X", method, "-w", "%{http_code}",
        ]
        for (name, value) in headers { arguments += ["-H", "\(name): \(value)"] }
        if let user { arguments += ["--user", "\(user.0):\(user.1)"] }
        if let form {
            for (name, value) in form.sorted(by: { $0.key < $1.key }) {
                arguments += ["--data-urlencode", "\(name)=\(value)"]
            }
        }
        arguments.append(url)
        let result = try runProcess(URL(fileURLWithPath: "/usr/bin/curl"), arguments)
        guard result.status == 0, let status = Int(result.stdout) else {
            throw TestServerError(message: "curl \(url): \(result.stderr)")
        }
        var fields: [String: String] = [:]
        let head = (try? String(contentsOfFile: stem + ".head", encoding: .utf8)) ?? ""
        for line in head.split(whereSeparator: \.isNewline) {
            guard let colon = line.firstIndex(of: ":") else { continue }
            fields[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        let body = (try? String(contentsOfFile: stem + ".body", encoding: .utf8)) ?? ""
        return HTTPExchange(status: status, headers: fields, body: body)
    }

    /// The page's form token (every form of a page carries the same).
    public var formToken: String? {
        guard let range = body.range(of: "name=\"token\" value=\"") else { return nil }
        return String(body[range.upperBound...].prefix { $0 != "\"" })
    }
}
