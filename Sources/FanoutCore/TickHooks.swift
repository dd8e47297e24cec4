/// What a long-running caller (the worker) asks of a tick beyond cron's one run: a way to stop
/// it early without losing anything, and news of where it is.
public struct TickHooks: Sendable {
    /// Polled between companies, before each claim and each hand-over, and by the transfer
    /// threads: once true, no company is started, no item is claimed or handed to a server; the
    /// transfers in flight finish and are recorded, claimed items never handed over go back to
    /// pending uncharged, and the lease is released (a drain).
    public var stopRequested: @Sendable () -> Bool
    /// A batch of this job (of this company) begins.
    public var batchStarted: @Sendable (JobRecord) -> Void
    /// The tick is alive and moving: called at least every check interval (250 ms) during a batch
    /// and between companies.
    public var alive: @Sendable () -> Void

    public init(
        stopRequested: @escaping @Sendable () -> Bool = { false },
        batchStarted: @escaping @Sendable (JobRecord) -> Void = { _ in },
        alive: @escaping @Sendable () -> Void = {}
    ) {
        self.stopRequested = stopRequested
        self.batchStarted = batchStarted
        self.alive = alive
    }

    /// Cron's tick: runs to its end.
    public static let none = TickHooks()
}
