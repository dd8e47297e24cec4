import Synchronization

/// What a batch came to.
struct BatchOutcome {
    enum Stop { case ended(JobStatus, String?), leaseLost, storeFailed }
    var delivered = 0
    var failed = 0
    var retrying = 0
    var stop: Stop?
    var leaseLost: Bool { if case .leaseLost? = stop { true } else { false } }
}

/// The `DeliveryControl` of one batch: claims the batch in slices as the deliverer asks for
/// items (so a big batch starts delivering at once, and the rest is claimed while the first items
/// are sent), writes outcomes in groups, and checks the job and the lease at most every
/// `checkInterval`.
///
/// Two locks: `state` guards the bookkeeping and is held briefly; `storeAccess` is held for the
/// length of a store call, so the store (one database connection) is used by one thread at a
/// time. A group or a check that finds the store busy with a slice is left for the next call: the
/// delivering threads never wait for a claim.
final class BatchControl: DeliveryControl, @unchecked Sendable {
    // Sendable: `store` is only used while `storeAccess` is held; the rest is immutable or in `state`.
    private struct State {
        /// Claimed items without an outcome yet, with the attempts made before this one.
        var attempts: [UInt64: Int] = [:]
        /// Claimed items not handed out yet, from `head` on.
        var queue: [WorkItem] = []
        var head = 0
        var claimed = 0
        var lastSlice = 0
        var exhausted = false
        var closed = false
        var pending: [ItemUpdate] = []
        var lastFlush: ContinuousClock.Instant
        var lastCheck: ContinuousClock.Instant
        var outcome = BatchOutcome()
        var failure: (any Error)?
    }

    private let policy: TickPolicy
    private let store: any JobStore
    private let job: JobRecord
    private let lease: Lease
    private let clock = ContinuousClock()
    private let state: Mutex<State>
    private let storeAccess = Mutex(())

    init(policy: TickPolicy, store: any JobStore, job: JobRecord, lease: Lease) {
        self.policy = policy
        self.store = store
        self.job = job
        self.lease = lease
        let now = clock.now
        state = Mutex(State(lastFlush: now, lastCheck: now))
    }

    /// Claims the first slice; false when nothing of the job is due.
    func start() throws -> Bool {
        claimSlice()
        return try state.withLock { state in
            if let failure = state.failure { throw failure }
            return state.claimed > 0
        }
    }

    var outcome: BatchOutcome { state.withLock { $0.outcome } }

    /// Items claimed that never got an outcome (never handed out, or their delivery was cut short).
    var unreportedItemIDs: [UInt64] { state.withLock { $0.attempts.keys.sorted() } }

    func nextItem() -> WorkItem? {
        while true {
            let (item, mayClaim) = state.withLock { state -> (WorkItem?, Bool) in
                guard state.outcome.stop == nil, !state.closed else { return (nil, false) }
                guard state.head < state.queue.count else { return (nil, !state.exhausted) }
                let item = state.queue[state.head]
                state.head += 1
                if state.head == state.queue.count {
                    state.queue.removeAll(keepingCapacity: true)
                    state.head = 0
                }
                return (item, false)
            }
            if let item { return item }
            guard mayClaim else { return nil }
            claimSlice()
        }
    }

    /// Claims the next slice of the batch (waiting for the store if it is busy).
    private func claimSlice() {
        storeAccess.withLock { _ in
            let size = state.withLock { state in
                state.closed || state.exhausted || state.outcome.stop != nil
                    ? 0 : policy.nextClaimSlice(after: state.lastSlice, remaining: policy.batchSize - state.claimed)
            }
            guard size > 0 else {
                state.withLock { $0.exhausted = true }
                return
            }
            let items: [WorkItem]
            do {
                items = try store.claim(job: job, limit: size, lease: lease)
            } catch {
                return failed(error)
            }
            state.withLock { state in
                for item in items { state.attempts[item.id] = item.attempts }
                state.queue.append(contentsOf: items)
                state.claimed += items.count
                state.lastSlice = size
                // Fewer than asked: nothing more is due (or the job or the lease changed, which
                // the next check tells).
                if items.count < size || state.claimed >= policy.batchSize { state.exhausted = true }
            }
        }
    }

    func report(_ outcome: ItemOutcome) {
        let due = state.withLock { state -> Bool in
            guard let attempts = state.attempts.removeValue(forKey: outcome.itemID) else { return false }
            let update = policy.update(for: outcome, attempts: attempts)
            switch update.status {
            case .pending: state.outcome.retrying += 1
            case .failed: state.outcome.failed += 1
            default: state.outcome.delivered += 1
            }
            state.pending.append(update)
            return policy.flushDue(waiting: state.pending.count, sinceLastFlush: clock.now - state.lastFlush)
        }
        if due { _ = storeAccess.withLockIfAvailable { _ in flushLocked() } }
    }

    func shouldContinue() -> Bool {
        let (stopped, flushDue, checkDue) = state.withLock { state in
            let now = clock.now
            return (
                state.outcome.stop != nil,
                policy.flushDue(waiting: state.pending.count, sinceLastFlush: now - state.lastFlush),
                now - state.lastCheck >= policy.checkInterval
            )
        }
        if stopped { return false }
        if flushDue || checkDue {
            _ = storeAccess.withLockIfAvailable { _ in
                if flushDue { flushLocked() }
                if checkDue { checkLocked() }
            }
        }
        return state.withLock { $0.outcome.stop == nil }
    }

    /// Ends the batch: no more claims, and the outcomes still waiting are written.
    func finish() throws {
        try storeAccess.withLock { _ in
            state.withLock { $0.closed = true }
            flushLocked()
            try state.withLock { state in
                if let failure = state.failure { throw failure }
            }
        }
    }

    /// Writes the waiting outcomes as one group; call with `storeAccess` held.
    private func flushLocked() {
        let group = state.withLock { state -> [ItemUpdate] in
            state.lastFlush = clock.now
            guard state.failure == nil, !state.outcome.leaseLost else { return [] }
            defer { state.pending.removeAll() }
            return state.pending
        }
        guard !group.isEmpty else { return }
        do {
            let written = try store.record(group, job: job, lease: lease)
            if written < group.count, case .lost = try store.check(job, lease: lease) {
                state.withLock { $0.outcome.stop = .leaseLost }
            }
        } catch {
            failed(error)
        }
    }

    /// Heartbeats the lease and re-reads the job; call with `storeAccess` held.
    private func checkLocked() {
        state.withLock { $0.lastCheck = clock.now }
        do {
            switch try store.check(job, lease: lease) {
            case .lost:
                state.withLock { $0.outcome.stop = .leaseLost }
            case .held(let status, let reason):
                if status.isTerminal { state.withLock { $0.outcome.stop = .ended(status, reason) } }
            }
        } catch {
            failed(error)
        }
    }

    private func failed(_ error: any Error) {
        state.withLock { state in
            if state.failure == nil { state.failure = error }
            state.outcome.stop = .storeFailed
        }
    }
}
