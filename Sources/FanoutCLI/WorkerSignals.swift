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

    /// Exit status of a worker stopped at once.
    static let stoppedAtOnce: Int32 = 1

    static func install() {
        for number in [SIGTERM, SIGINT, SIGQUIT] {
            signal(number) { _ in
                if WorkerSignals.stops.add(1, ordering: .sequentiallyConsistent).newValue > 1 {
                    let line = Array(
                        "fanout: second stop signal: stopping at once (transfers in flight are in doubt)\n".utf8)
                    _ = line.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
                    _exit(WorkerSignals.stoppedAtOnce)
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
