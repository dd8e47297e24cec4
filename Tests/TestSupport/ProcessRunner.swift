import Foundation

/// What a finished process left behind.
public struct ProcessResult: Sendable {
    public var status: Int32
    public var stdout: String
    public var stderr: String
}

/// Runs a program to its end with the given environment added to a minimal one, capturing output.
public func runProcess(
    _ executable: URL,
    _ arguments: [String],
    environment: [String: String] = [:],
    currentDirectory: URL? = nil,
    inheritEnvironment: Bool = false
) throws -> ProcessResult {
    let process = Process()
    process.executableURL = executable
    process.arguments = arguments
    var env = inheritEnvironment ? ProcessInfo.processInfo.environment : ["PATH": "/usr/bin:/bin:/usr/sbin:/sbin"]
    for (key, value) in environment { env[key] = value }
    process.environment = env
    if let currentDirectory { process.currentDirectoryURL = currentDirectory }
    let out = TemporaryOutput()
    let err = TemporaryOutput()
    process.standardOutput = out.handle
    process.standardError = err.handle
    process.standardInput = FileHandle.nullDevice
    try process.run()
    process.waitUntilExit()
    return ProcessResult(status: process.terminationStatus, stdout: out.contents(), stderr: err.contents())
}

/// Runs the built `fanout` binary.
public func runFanout(_ arguments: [String], environment: [String: String] = [:], currentDirectory: URL? = nil) throws -> ProcessResult {
    try runProcess(TestEnvironment.fanoutBinary, arguments, environment: environment, currentDirectory: currentDirectory ?? TestEnvironment.repositoryRoot)
}

/// A file that collects a child's output (pipes can fill up and block a chatty child).
final class TemporaryOutput {
    let url: URL
    let handle: FileHandle

    init() {
        url = TestEnvironment.scratchDirectory.appendingPathComponent("out-\(UUID().uuidString)")
        _ = FileManager.default.createFile(atPath: url.path, contents: nil)
        handle = try! FileHandle(forWritingTo: url)
    }

    func contents() -> String {
        try? handle.close()
        defer { try? FileManager.default.removeItem(at: url) }
        return (try? String(contentsOf: url, encoding: .utf8)) ?? ""
    }
}

/// Polls `condition` every 20 ms until it holds or `seconds` pass. Not a timing assertion: it
/// bounds a wait for something that happens in another process.
public func waitUntil(seconds: Double = 10, _ condition: () throws -> Bool) rethrows -> Bool {
    let deadline = Date().addingTimeInterval(seconds)
    while Date() < deadline {
        if try condition() { return true }
        usleep(20_000)
    }
    return try condition()
}
