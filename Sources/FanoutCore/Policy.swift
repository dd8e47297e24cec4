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
    /// How often, at least, a running batch re-reads the job (cancellation) and heartbeats; an
    /// item is handed to the server only while the last such contact is younger than this.
    public var checkInterval: Duration
    /// How many items ahead of the last one handed to the server each write marks as "may have
    /// been handed over": a crash leaves at most this many (plus those in flight) in doubt. The
    /// commands set it to the connections (as many as can start at once): 16 measured no faster
    /// than 4 with 4 connections, and left 20 items in doubt after a crash instead of 8.
    public var handOverWindow: Int
    /// How long the first outcome of a group waits for others before it is written (a group is
    /// written at once when `handOverWindow` outcomes arrived, or no transfer that may still join
    /// it is in flight): fewer writes for the same outcomes, each connection still holding at most
    /// one unrecorded. 300 µs measured: a 5,000-item job 0.56× the statements at the same rate,
    /// 10-item batches of many companies 0.87× the statements at 0.92× the rate (1 ms: 0.8×).
    public var groupWait: Duration
    /// A batch is claimed in slices as delivery asks for items: `claimSlice` first (so the first
    /// deliveries start at once), then twice the last slice, at most `maxClaimSlice`.
    public var claimSlice: Int
    public var maxClaimSlice: Int
    public var inDoubt: InDoubtPolicy

    public init(
        kind: JobKind,
        batchSize: Int? = nil,
        maxTime: Duration = .seconds(50),
        inactiveAfter: Duration = .seconds(30 * 60),
        stuckAfter: Duration = .seconds(10 * 60),
        maxAttempts: Int = 5,
        backoff: [Duration] = [.seconds(60), .seconds(5 * 60), .seconds(15 * 60), .seconds(60 * 60)],
        checkInterval: Duration = .milliseconds(250),
        handOverWindow: Int = 4,
        groupWait: Duration = .microseconds(300),
        claimSlice: Int = 100,
        maxClaimSlice: Int = 1000,
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
        self.handOverWindow = max(1, handOverWindow)
        self.groupWait = groupWait
        self.claimSlice = max(1, claimSlice)
        self.maxClaimSlice = max(self.claimSlice, maxClaimSlice)
        self.inDoubt = inDoubt
    }

    /// The size of the slice to claim after one of `last` items (0: the first), with `remaining`
    /// items of the batch left to claim.
    public func nextClaimSlice(after last: Int, remaining: Int) -> Int {
        min(remaining, last == 0 ? claimSlice : min(maxClaimSlice, last * 2))
    }

    /// The wait before the next attempt after `attempts` attempts, at least `retryAfter` when the
    /// server asked for it.
    public func delay(afterAttempts attempts: Int, retryAfter: Duration?) -> Duration {
        let index = max(0, min(attempts - 1, backoff.count - 1))
        let base = backoff.isEmpty ? .seconds(60) : backoff[index]
        guard let retryAfter else { return base }
        return max(base, retryAfter)
    }

    /// Turns a delivery outcome into the row update the retry policy says.
    public func update(for outcome: ItemOutcome, attempts: Int) -> ItemUpdate {
        switch outcome.result {
        case .delivered:
            return ItemUpdate(
                itemID: outcome.itemID, status: kind.deliveredStatus, reason: outcome.note, code: outcome.code,
                retryDelay: nil)
        case .failed:
            return ItemUpdate(
                itemID: outcome.itemID, status: .failed, reason: outcome.detail, code: outcome.code, retryDelay: nil)
        case .suppressed:
            return ItemUpdate(
                itemID: outcome.itemID, status: .suppressed, reason: outcome.detail, code: nil, retryDelay: nil,
                charged: false)
        case .waiting(let wait):
            return ItemUpdate(
                itemID: outcome.itemID, status: .pending, reason: outcome.detail, code: outcome.code, retryDelay: wait,
                charged: false)
        case .transient(let retryAfter):
            let made = attempts + 1
            if made >= maxAttempts {
                return ItemUpdate(
                    itemID: outcome.itemID, status: .failed,
                    reason: "Gave up after \(made) attempts: \(outcome.detail)", code: outcome.code, retryDelay: nil)
            }
            let delay = delay(afterAttempts: made, retryAfter: retryAfter)
            return ItemUpdate(
                itemID: outcome.itemID, status: .pending,
                reason: "Will retry (attempt \(made) of \(maxAttempts)): \(outcome.detail)", code: outcome.code,
                retryDelay: delay)
        }
    }
}

extension Duration {
    /// The duration in seconds, as a Double.
    public var seconds: Double {
        let (whole, fraction) = components
        return Double(whole) + Double(fraction) / 1e18
    }
}
