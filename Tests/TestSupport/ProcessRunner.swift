import Foundation

/// What a finished process left behind.
public struct ProcessResult: Sendable {
    public var status: Int32
    public var stdout: String
    public var stderr: String
}

/// Runs a program to its end with the given environment added to a minimal one (or to this
/// process's, with `inheritEnvironment`), capturing its output.
public func runProcess(
    _ executable: URL,
    _ arguments: [String],
    environment: [String: String] = [:],
    currentDirectory: URL? = nil,
    inheritEnvironment: Bool = false
) throws -> ProcessResult {
    var env = inheritEnvironment ? ProcessInfo.processInfo.environment : ["PATH": "/usr/bin:/bin:/usr/sbin:/sbin"]
    for (key, value) in environment { env[key] = value }
    let stem = TestEnvironment.scratchDirectory.appendingPathComponent("out-\(UUID().uuidString)").path
    defer {
        unlink(stem + ".out")
        unlink(stem + ".err")
    }
    let child = try ChildProcess(
        executable.path, arguments, environment: env, directory: currentDirectory?.path, stdout: stem + ".out",
        stderr: stem + ".err")
    let status = child.wait()
    return ProcessResult(
        status: status,
        stdout: (try? String(contentsOfFile: stem + ".out", encoding: .utf8)) ?? "",
        stderr: (try? String(contentsOfFile: stem + ".err", encoding: .utf8)) ?? ""
    )
}

/// Starts the built `fanout` binary without waiting for it (for kill and SIGSTOP tests).
public func startFanout(_ arguments: [String], environment: [String: String] = [:], output: URL) throws -> ChildProcess
{
    var env = ["PATH": "/usr/bin:/bin:/usr/sbin:/sbin"]
    for (key, value) in environment { env[key] = value }
    return try ChildProcess(
        TestEnvironment.fanoutBinary.path, arguments, environment: env, directory: TestEnvironment.repositoryRoot.path,
        stdout: output.path + ".out", stderr: output.path + ".err")
}

/// Runs the built `fanout` binary.
public func runFanout(_ arguments: [String], environment: [String: String] = [:], currentDirectory: URL? = nil) throws
    -> ProcessResult
{
    try runProcess(
        TestEnvironment.fanoutBinary, arguments, environment: environment,
        currentDirectory: currentDirectory ?? TestEnvironment.repositoryRoot)
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

/// Starts `count` copies of the built `fanout` at once with the same arguments (overlapping
/// ticks, as cron on several hosts makes them) and waits for all: their exit statuses, nil for
/// one still running after `seconds` (then killed).
public func runTogether(
    _ count: Int, _ arguments: [String], environment: [String: String], seconds: Double = 120
) throws -> [Int32?] {
    let output = TestEnvironment.scratchDirectory.appendingPathComponent("together-\(UUID().uuidString)")
    let processes = try (0..<count).map { n in
        try startFanout(arguments, environment: environment, output: output.appendingPathExtension("\(n)"))
    }
    return processes.map { $0.wait(seconds: seconds) }
}

/// The most of `times` (seconds, sorted or not) that fall in any window of `seconds`: what a rate
/// limit bounds.
public func mostWithin(_ seconds: Double, _ times: [Double]) -> Int {
    times.map { start in times.filter { $0 >= start && $0 < start + seconds }.count }.max() ?? 0
}
