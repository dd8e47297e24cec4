/// The knobs of a tick, with the contract's defaults.
public struct TickPolicy: Sendable {
    public var kind: JobKind
    /// Items per job per tick.
    public var batchSize: Int
    /// Stop starting new batches after this long.
    public var maxTime: Duration
    /// Fail a job that made no progress for this long while Fanout was running.
    public var inactiveAfter: Duration
    /// Take over a lease whose holder has not shown a sign of life for this long.
    public var stuckAfter: Duration
    /// Attempts before a transiently failing item fails for good.
    public var maxAttempts: Int
    /// Waits before the 2nd, 3rd, … attempt; the last one repeats.
    public var backoff: [Duration]
    /// How often, at least, a running batch re-reads the job (cancellation) and heartbeats.
    public var checkInterval: Duration
    /// Outcomes are written in groups: once `flushSize` wait and `flushSpacing` passed since the
    /// last group (so a fast batch writes a few big groups, not many small ones), once
    /// `maxFlushSize` wait, and at least every `flushInterval`.
    public var flushSize: Int
    public var flushSpacing: Duration
    public var maxFlushSize: Int
    public var flushInterval: Duration
    public var inDoubt: InDoubtPolicy

    public init(
        kind: JobKind,
        batchSize: Int? = nil,
        maxTime: Duration = .seconds(50),
        inactiveAfter: Duration = .seconds(30 * 60),
        stuckAfter: Duration = .seconds(10 * 60),
        maxAttempts: Int = 5,
        backoff: [Duration] = [.seconds(60), .seconds(5 * 60), .seconds(15 * 60), .seconds(60 * 60)],
        checkInterval: Duration = .milliseconds(500),
        flushSize: Int = 50,
        flushSpacing: Duration = .milliseconds(100),
        maxFlushSize: Int = 1000,
        flushInterval: Duration = .seconds(1),
        inDoubt: InDoubtPolicy = .atLeastOnce
    ) {
        self.kind = kind
        self.batchSize = batchSize ?? kind.defaultBatchSize
        self.maxTime = maxTime
        self.inactiveAfter = inactiveAfter
        self.stuckAfter = stuckAfter
        self.maxAttempts = maxAttempts
        self.backoff = backoff
        self.checkInterval = checkInterval
        self.flushSize = flushSize
        self.flushSpacing = flushSpacing
        self.maxFlushSize = max(flushSize, maxFlushSize)
        self.flushInterval = flushInterval
        self.inDoubt = inDoubt
    }

    /// Whether `waiting` outcomes, the last group written `sinceLastFlush` ago, should be written now.
    public func flushDue(waiting: Int, sinceLastFlush: Duration) -> Bool {
        sinceLastFlush >= flushInterval || waiting >= maxFlushSize || (waiting >= flushSize && sinceLastFlush >= flushSpacing)
    }

    /// The wait before the next attempt after `attempts` attempts, at least `retryAfter` when the
    /// server asked for it.
    public func delay(afterAttempts attempts: Int, retryAfter: Duration?) -> Duration {
        let index = max(0, min(attempts - 1, backoff.count - 1))
        let base = backoff.isEmpty ? .seconds(60) : backoff[index]
        guard let retryAfter else { return base }
        return max(base, retryAfter)
    }
}
