import Foundation
import Synchronization

/// What a batch came to.
struct BatchOutcome {
    enum Stop { case ended(JobStatus, String?), leaseLost, storeFailed }
    var delivered = 0
    var failed = 0
    var retrying = 0
    var suppressed = 0
    var stop: Stop?
    var leaseLost: Bool { if case .leaseLost? = stop { true } else { false } }
    /// Whether the store can still be written to (the job may have ended meanwhile).
    var writable: Bool {
        switch stop {
        case nil, .ended?: true
        case .leaseLost?, .storeFailed?: false
        }
    }
}

/// The `DeliveryControl` of one batch: claims the batch in slices as the deliverer asks for
/// items, writes every outcome ahead as soon as it is known, and lets an item be handed to the
/// server only once the database says it may have been.
///
/// Write-ahead: one writer thread makes at most one write at a time; the next write takes every
/// outcome that arrived meanwhile (a slow server gives small writes, a fast one big writes).
/// Each write also heartbeats the lease, reads the job's status (a cancel is seen with the next
/// write, or within `checkInterval` when nothing arrives) and whether a suppression arrived for
/// an item not handed over yet, and moves the lease's hand-over mark
/// `handOverWindow` items ahead of the last item handed over. A transfer starts only when its
/// item is under the mark and the lease was confirmed less than `checkInterval` ago, so a crash
/// leaves at most the window plus the transfers in flight in doubt, and a process that was
/// stopped and lost its lease starts nothing new when it resumes.
///
/// `condition` guards `state`; `storeAccess` is held for the length of a store call, so the store
/// (one database connection) is used by one thread at a time (the writer, or a slice's claim).
final class BatchControl: DeliveryControl, @unchecked Sendable {
    // Sendable: `store` is only used while `storeAccess` is held; `state` only under `condition`.
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
        /// Claimed item ids in claim (and hand-over) order, and how many of them were passed.
        var order: [UInt64] = []
        var handed = 0
        /// `onExhausted` ran.
        var saidExhausted = false
        /// Item ids up to this one are marked in the database as possibly handed over.
        var mark: UInt64 = 0
        /// Threads waiting in `handOver` for the mark or a fresh confirmation (they need a write,
        /// even with no outcome to write).
        var waiting = 0
        /// Claims waiting for the store: the writer lets them go first (a writer that is always
        /// busy would otherwise starve the claims, and with them delivery).
        var claiming = 0
        /// Items not to hand over, with why: their recipient was suppressed after the claim.
        var suppressed: [UInt64: String] = [:]
        /// Outcomes not written yet, and when the first of them arrived.
        var pending: [ItemUpdate] = []
        var pendingSince: ContinuousClock.Instant?
        /// Items handed to the server (`.go`) without an outcome yet, with when.
        var inFlight: [UInt64: ContinuousClock.Instant] = [:]
        /// Outcomes reported, and of those, written (a prefix: groups are written in order).
        var reported = 0
        var recorded = 0
        /// When the last write that confirmed the lease was sent.
        var confirmed: ContinuousClock.Instant
        var writerDone = false
        /// Run after every write (ends the delivering threads' waits for `isRecorded`).
        var wake: (@Sendable () -> Void)?
        var outcome = BatchOutcome()
        var failure: (any Error)?
    }

    private let policy: TickPolicy
    private let hooks: TickHooks
    private let store: any JobStore
    private let job: JobRecord
    private let lease: Lease
    private let clock = ContinuousClock()
    private let condition = NSCondition()
    private var state: State
    private let storeAccess = Mutex(())
    private var writer: Thread?
    /// Run once, on the thread that asked, when the batch's last item was handed over: its last
    /// transfers are under way (an overlapped tick begins the next company then). Set before
    /// delivery starts.
    var onExhausted: (@Sendable () -> Void)?

    /// Whether the first claim marks its first items as possibly handed over (saving a write);
    /// false for a batch claimed ahead, while another company's batch is delivered: its items
    /// may wait a while, and a crash then must not leave them in doubt.
    private let markOnClaim: Bool

    init(
        policy: TickPolicy, store: any JobStore, job: JobRecord, lease: Lease, hooks: TickHooks = .none,
        markOnClaim: Bool = true
    ) {
        self.markOnClaim = markOnClaim
        self.hooks = hooks
        self.policy = policy
        self.store = store
        self.job = job
        self.lease = lease
        // The lease was just taken or heartbeated by the claim that `start` makes.
        state = State(confirmed: clock.now)
    }

    private func locked<T>(_ body: (inout State) throws -> T) rethrows -> T {
        condition.lock()
        defer { condition.unlock() }
        return try body(&state)
    }

    /// Claims the first slice and starts the writer; false when nothing of the job is due.
    func start() throws -> Bool {
        let started = clock.now
        claimSlice()
        try locked { state in
            if let failure = state.failure { throw failure }
            state.confirmed = started
        }
        guard locked({ $0.claimed > 0 }) else { return false }
        let thread = Thread { [self] in writeAhead() }
        thread.name = "fanout-writer"
        writer = thread
        thread.start()
        return true
    }

    var outcome: BatchOutcome { locked { $0.outcome } }

    /// Whether some claimed item never got an outcome (never handed out, or its delivery was cut
    /// short).
    var hasUnreportedItems: Bool { locked { !$0.attempts.isEmpty } }

    func nextItem() -> WorkItem? {
        while true {
            let (item, mayClaim) = locked { state -> (WorkItem?, Bool) in
                guard state.outcome.stop == nil, !state.closed, !hooks.stopRequested() else { return (nil, false) }
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

    /// Claims the next slice of the batch (waiting for the store if the writer is using it).
    private func claimSlice() {
        locked { $0.claiming += 1 }
        storeAccess.withLock { _ in claimSliceHoldingStore() }
        locked { state in
            state.claiming -= 1
            condition.broadcast()
        }
    }

    private func claimSliceHoldingStore() {
        let size = locked { state in
            state.closed || state.exhausted || state.outcome.stop != nil
                ? 0 : policy.nextClaimSlice(after: state.lastSlice, remaining: policy.batchSize - state.claimed)
        }
        guard size > 0 else {
            locked { $0.exhausted = true }
            return
        }
        let claimed: ClaimedItems
        do {
            claimed = try store.claim(
                job: job, limit: size, lease: lease, marking: markOnClaim ? policy.handOverWindow : 0)
        } catch {
            return failed(error)
        }
        let items = claimed.items
        locked { state in
            state.mark = max(state.mark, claimed.handedThrough)
            for item in items { state.attempts[item.id] = item.attempts }
            state.queue.append(contentsOf: items)
            state.order.append(contentsOf: items.map(\.id))
            state.claimed += items.count
            state.lastSlice = size
            // Fewer than asked: nothing more is due (or the job or the lease changed, which the
            // next write tells).
            if items.count < size || state.claimed >= policy.batchSize { state.exhausted = true }
        }
    }

    func handOver(_ itemID: UInt64) -> HandOver {
        let answer = handOverLocked(itemID)
        // The batch's last item handed over: said once, outside the lock.
        let last =
            answer != .stop && onExhausted != nil
            && locked { state in
                guard state.exhausted, state.handed == state.order.count, !state.saidExhausted else { return false }
                state.saidExhausted = true
                return true
            }
        if last { onExhausted?() }
        return answer
    }

    private func handOverLocked(_ itemID: UInt64) -> HandOver {
        let asked = clock.now
        condition.lock()
        defer { condition.unlock() }
        // Items are handed over in claim order; those skipped (rejected before sending) are passed.
        while state.handed < state.order.count {
            state.handed += 1
            if state.order[state.handed - 1] == itemID { break }
        }
        while true {
            guard state.outcome.stop == nil, state.failure == nil else { return .stop }
            // Confirmed by a write sent after this call began, or recently enough.
            if itemID <= state.mark && (state.confirmed >= asked || clock.now - state.confirmed < policy.checkInterval)
            {
                if let why = state.suppressed.removeValue(forKey: itemID) {
                    return .skip(reason: WorkItem.suppressedReason(why))
                }
                state.inFlight[itemID] = clock.now
                return .go
            }
            if state.writerDone { return .stop }
            state.waiting += 1
            condition.broadcast()
            condition.wait()
            state.waiting -= 1
        }
    }

    func report(_ outcome: ItemOutcome) {
        condition.lock()
        defer { condition.unlock() }
        guard let attempts = state.attempts.removeValue(forKey: outcome.itemID) else { return }
        let update = policy.update(for: outcome, attempts: attempts)
        switch update.status {
        case .pending: state.outcome.retrying += 1
        case .failed: state.outcome.failed += 1
        case .suppressed: state.outcome.suppressed += 1
        default: state.outcome.delivered += 1
        }
        state.inFlight[outcome.itemID] = nil
        if state.pending.isEmpty { state.pendingSince = clock.now }
        state.pending.append(update)
        state.reported += 1
        condition.broadcast()
    }

    func recordTicket() -> Int {
        locked { $0.reported }
    }

    func isRecorded(_ ticket: Int) -> Bool {
        locked { state in state.recorded >= ticket || !state.outcome.writable || state.writerDone }
    }

    func onRecorded(_ wake: @escaping @Sendable () -> Void) {
        locked { $0.wake = wake }
    }

    /// Lost as the database said, or presumed lost: no write confirmed the lease for longer than
    /// another tick waits before taking it over (this process was stopped, or the database hung),
    /// which is known here at once, before any write can tell.
    func leaseLost() -> Bool {
        locked { $0.outcome.leaseLost || clock.now - $0.confirmed > policy.stuckAfter }
    }

    /// False once the job ended, the lease was lost or the store failed, or a drain was asked
    /// for (the hooks): the transfers in flight finish, nothing new starts.
    func shouldContinue() -> Bool {
        locked { $0.outcome.stop == nil } && !hooks.stopRequested()
    }

    /// Ends the batch: no more claims or hand-overs, and the writer writes what is still waiting.
    func finish() throws {
        try locked { state in
            state.closed = true
            condition.broadcast()
            while writer != nil && !state.writerDone { condition.wait() }
            if let failure = state.failure { throw failure }
        }
    }

    /// The writer thread: writes outcomes as they arrive, and heartbeats when none arrive.
    private func writeAhead() {
        condition.lock()
        while state.outcome.writable {
            let now = clock.now
            let sinceConfirmed = now - state.confirmed
            let checkDue = sinceConfirmed >= policy.checkInterval
            // Outcomes are written in groups: once as many as can be in flight at once arrived,
            // once no transfer is left that may join them, or `groupWait` after the first. Only a
            // transfer handed over before the group began may join it: a later one is likely the
            // next of a connection that waits for this very write before it may end.
            let groupReady =
                !state.pending.isEmpty
                && (state.closed || state.pending.count >= policy.handOverWindow
                    || now - (state.pendingSince ?? now) >= policy.groupWait
                    || !state.inFlight.values.contains { $0 < state.pendingSince ?? now })
            let markOnly = state.pending.isEmpty && state.waiting > 0
            if !groupReady && !markOnly && !checkDue {
                if state.closed && state.pending.isEmpty { break }
                var left = policy.checkInterval - sinceConfirmed
                if let since = state.pendingSince, !state.pending.isEmpty {
                    left = min(left, policy.groupWait - (now - since))
                }
                _ = condition.wait(until: Date(timeIntervalSinceNow: max(0.0002, left.seconds)))
                continue
            }
            if state.closed && state.pending.isEmpty { break }
            let group = state.pending
            state.pending.removeAll(keepingCapacity: true)
            state.pendingSince = nil
            let mark = nextMark()
            // Taken with the group: a hand-over asked after this instant sees its earlier
            // outcomes in the write that confirms it.
            let sent = clock.now
            while state.claiming > 0 { condition.wait() }
            condition.unlock()
            let result = storeAccess.withLock { _ in
                Result {
                    let check = try store.write(group, handedThrough: mark, job: job, lease: lease)
                    guard case .held = check else { return (check, [UInt64: String]()) }
                    return (check, try store.suppressedInFlight(job: job, lease: lease))
                }
            }
            condition.lock()
            switch result {
            case .success((.lost, _)):
                state.outcome.stop = .leaseLost
            case .success((.held(let status, let reason), let suppressed)):
                state.suppressed.merge(suppressed) { _, new in new }
                state.mark = max(state.mark, mark)
                state.confirmed = sent
                state.recorded += group.count
                if status.isTerminal, state.outcome.stop == nil { state.outcome.stop = .ended(status, reason) }
            case .failure(let error):
                if state.failure == nil { state.failure = error }
                state.outcome.stop = .storeFailed
            }
            condition.broadcast()
            hooks.alive()
            if let wake = state.wake {
                condition.unlock()
                wake()
                condition.lock()
            }
        }
        state.writerDone = true
        condition.broadcast()
        let wake = state.wake
        state.wake = nil
        condition.unlock()
        wake?()
    }

    /// The mark for the next write: `handOverWindow` items past the last one handed over (never
    /// lower than before); call with `condition` locked.
    private func nextMark() -> UInt64 {
        let end = min(state.handed + policy.handOverWindow, state.order.count)
        let start = max(0, state.handed - 1)
        guard start < end else { return state.mark }
        return max(state.mark, state.order[start..<end].max() ?? 0)
    }

    private func failed(_ error: any Error) {
        locked { state in
            if state.failure == nil { state.failure = error }
            state.outcome.stop = .storeFailed
            condition.broadcast()
        }
    }
}
