import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A child process started with posix_spawn and reaped with waitpid.
///
/// Foundation's `Process.waitUntilExit` was seen to hang here when many tests ran at once (the
/// child had exited, but its monitor never fired), and it hands children a blocked SIGTERM; this
/// small wrapper has neither problem: the child starts with an empty signal mask and default
/// handlers, and waiting is a plain blocking waitpid.
public final class ChildProcess: @unchecked Sendable {
    // Sendable: `pid` is immutable; `status` is guarded by `lock`.
    public let pid: pid_t
    private let lock = NSLock()
    private var status: Int32?

    /// Starts `executable` with `arguments` and exactly `environment`, in `directory`, with its
    /// standard output and error written to the given files (created or truncated).
    public init(
        _ executable: String, _ arguments: [String], environment: [String: String], directory: String? = nil,
        stdout: String, stderr: String
    ) throws {
        var program = executable
        var argv = [executable] + arguments
        if let directory {
            // posix_spawn has no portable chdir: let a shell change folder, then exec the program.
            program = "/bin/sh"
            argv = ["/bin/sh", "-c", "cd \"$0\" && exec \"$@\"", directory, executable] + arguments
        }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, stdout, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_addopen(&actions, 2, stderr, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var empty = sigset_t()
        sigemptyset(&empty)
        posix_spawnattr_setsigmask(&attributes, &empty)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for signal in [SIGTERM, SIGINT, SIGCHLD, SIGPIPE, SIGHUP] { sigaddset(&defaults, signal) }
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        let cArguments = argv.map { strdup($0) } + [nil]
        let cEnvironment = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            cArguments.forEach { free($0) }
            cEnvironment.forEach { free($0) }
        }
        var pid: pid_t = 0
        let result = posix_spawn(&pid, program, &actions, &attributes, cArguments, cEnvironment)
        guard result == 0 else {
            throw TestServerError(message: "could not start \(executable): \(String(cString: strerror(result)))")
        }
        self.pid = pid
    }

    /// A child still running when its test ends (an expectation threw before `wait`) is killed
    /// and reaped, so no fanout outlives the test that started it.
    deinit {
        if exitStatus == nil {
            kill(pid, SIGKILL)
            wait()
        }
    }

    /// Sends a signal (SIGTERM by default).
    public func signal(_ signal: Int32 = SIGTERM) {
        if exitStatus == nil { kill(pid, signal) }
    }

    /// The exit status once reaped (128 + signal for a signalled child), nil while it runs.
    public var exitStatus: Int32? {
        lock.lock()
        defer { lock.unlock() }
        if status == nil {
            var raw: Int32 = 0
            if waitpid(pid, &raw, WNOHANG) == pid { status = Self.decode(raw) }
        }
        return status
    }

    public var isRunning: Bool { exitStatus == nil }

    /// Blocks until the child exits and returns its status.
    @discardableResult
    public func wait() -> Int32 {
        if let status = exitStatus { return status }
        var raw: Int32 = 0
        while waitpid(pid, &raw, 0) == -1 && errno == EINTR {}
        lock.lock()
        defer { lock.unlock() }
        if status == nil { status = Self.decode(raw) }
        return status!
    }

    /// Waits at most `seconds` for the child to exit and returns its status; a child still running
    /// then is killed (so a hung process fails its test instead of hanging the run) and nil is
    /// returned. Not a timing assertion: it bounds a wait for another process.
    public func wait(seconds: Double) -> Int32? {
        if waitUntil(seconds: seconds, { !isRunning }) { return exitStatus }
        signal(SIGKILL)
        wait()
        return nil
    }

    private static func decode(_ raw: Int32) -> Int32 {
        let signal = raw & 0x7F
        return signal == 0 ? (raw >> 8) & 0xFF : 128 + signal
    }
}
