import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Signals a worker obeys, counted by async-signal-safe handlers and read by its threads:
/// SIGTERM, SIGINT and SIGQUIT drain (a second one stops at once: `_exit` in the handler, the
/// transfers in flight are then in doubt, as after a crash); SIGUSR2 pauses claiming, SIGCONT
/// lets it go on.
enum WorkerSignals {
    private static let stops = Atomic<Int>(0)
    private static let pausedFlag = Atomic<Bool>(false)

    static func install() {
        // The atomics are lazily made globals: made here, never first inside a handler.
        _ = draining
        _ = paused
        for number in [SIGTERM, SIGINT, SIGQUIT] {
            signal(number) { _ in
                if WorkerSignals.stops.add(1, ordering: .sequentiallyConsistent).newValue > 1 {
                    // Async-signal-safe only: a static string and write(2), then _exit.
                    let line: StaticString =
                        "fanout: second stop signal: stopping at once (transfers in flight are in doubt)\n"
                    _ = write(2, line.utf8Start, line.utf8CodeUnitCount)
                    _exit(ExitStatus.failure)
                }
            }
        }
        signal(SIGUSR2) { _ in WorkerSignals.pausedFlag.store(true, ordering: .sequentiallyConsistent) }
        signal(SIGCONT) { _ in WorkerSignals.pausedFlag.store(false, ordering: .sequentiallyConsistent) }
    }

    /// A stop signal arrived: drain.
    static var draining: Bool { stops.load(ordering: .sequentiallyConsistent) > 0 }

    /// SIGUSR2 without a SIGCONT since.
    static var paused: Bool { pausedFlag.load(ordering: .sequentiallyConsistent) }
}
