#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Logging
import Synchronization

/// One cron tick for one kind of job: every company with runnable work gets one batch of its
/// oldest runnable job, in rotating order, until `maxTime` says stop starting new batches.
///
/// With `lanes` (further database connections), companies' batches overlap: while one is
/// delivered, the one before it is ended and the one after it begun, each on a connection of
/// its own. Each batch keeps its lease, fencing and writes exactly as when served alone.
///
/// The tick knows nothing of SQL or sockets: it talks to a `JobStore` and a `Deliverer`.
public final class Tick {
    private let policy: TickPolicy
    private let store: any JobStore
    private let deliverer: any Deliverer
    private let logger: Logger
    private let owner: String
    private let hooks: TickHooks
    private let lanes: (() throws -> [any JobStore])?
    private let clock = ContinuousClock()
    /// The database's clock, as read with the companies, and this process's clock then.
    private var databaseClock = (database: Date(timeIntervalSince1970: 0), local: ContinuousClock.now)

    /// - Parameters:
    ///   - owner: this tick's token, unique across hosts and time (a worker keeps one for all its
    ///     ticks).
    ///   - hooks: a worker's way to drain the tick and hear where it is.
    ///   - lanes: opens (or hands back) two more stores on connections of their own, asked for
    ///     only when two or more companies have work; nil, or a failure: one company after another.
    public init(
        policy: TickPolicy, store: any JobStore, deliverer: any Deliverer, owner: String, logger: Logger,
        hooks: TickHooks = .none, lanes: (() throws -> [any JobStore])? = nil
    ) {
        self.policy = policy
        self.store = store
        self.deliverer = deliverer
        self.owner = owner
        self.logger = logger
        self.hooks = hooks
        self.lanes = lanes
    }

    /// Runs the tick. Store errors (the database went away) are thrown; a delivery server that
    /// cannot be used ends the tick early with `summary.unavailable` set.
    public func run() throws -> TickSummary {
        let started = clock.now
        let work = try store.companiesWithWork(kind: policy.kind)
        databaseClock = (try store.now(), clock.now)
        var summary = TickSummary(kind: policy.kind, startedAt: databaseClock.database)
        summary.companies = work.count
        if work.isEmpty { return summary }
        let extra = work.count > 1 ? openLanes() : []
        if extra.isEmpty {
            for company in work {
                guard mayStartAnother(since: started) else { break }
                let begun = try begin(company, store: store, prepared: nil, markOnClaim: true)
                summary.add(begun.summary)
                guard let batch = begun.batch else { continue }
                deliver(batch)
                try end(batch)
                summary.add(batch.summary)
                // The server is gone, or asked the account to wait: the other companies wait too.
                if summary.stop(after: batch) { break }
            }
        } else {
            try overlapped(work, stores: [store] + extra, started: started, summary: &summary)
        }
        // The record of ticks only serves to tell a stalled job from a stopped Fanout: a tick in
        // which every company moved needs none (and saves a statement).
        if summary.busy + summary.stalled > 0 || summary.unavailable != nil || summary.paused != nil
            || summary.leaseLost
        {
            try store.recordTick(summary, owner: owner)
        }
        return summary
    }

    /// Whether another company may start: no drain was asked for and `maxTime` has not passed.
    private func mayStartAnother(since started: ContinuousClock.Instant) -> Bool {
        hooks.alive()
        if hooks.stopRequested() { return false }
        if clock.now - started >= policy.maxTime {
            logger.info(
                "max time reached: leaving the other companies to the next tick",
                metadata: ["tick.max_time": "\(policy.maxTime)"])
            return false
        }
        return true
    }

    private func openLanes() -> [any JobStore] {
        guard let lanes else { return [] }
        do {
            return try lanes()
        } catch {
            logger.notice("companies served one after another: no further database connection (\(error))")
            return []
        }
    }

    /// Companies' batches overlapping, each on a connection of its own: a helper thread ends
    /// the batch before the current one (its last write, advance, lease released) while the
    /// current one is delivered on this thread, and begins the one after it (lease taken, items
    /// claimed) once the current one has handed out its last item. The next company's lease is
    /// not taken before then, so another tick can serve it meanwhile. A batch begun ahead and
    /// then not delivered (the server went away, a drain, max time, a store error) gives its
    /// items back unclaimed and its lease back, without moving in the rotation.
    private func overlapped(
        _ work: [CompanyWork], stores: [any JobStore], started: ContinuousClock.Instant,
        summary: inout TickSummary
    ) throws {
        let helper = SerialHelper()
        defer { helper.finish() }
        let shared = Mutex(Shared(summary: TickSummary(kind: policy.kind, startedAt: summary.startedAt)))
        let tick = Unchecked(self)
        /// Readies company `index` on this thread (templates load on the deliverer's thread) and
        /// returns what begins it on the helper, once asked.
        func ahead(_ index: Int) -> Ahead {
            let company = work[index]
            var failure: JobFailure?
            if !company.job.status.isTerminal {
                do { try deliverer.prepare(company.job) } catch { failure = error }
            }
            let prepared = failure
            let store = Unchecked(stores[index % stores.count])
            return Ahead {
                helper.run {
                    let begun = try tick.value.begin(
                        company, store: store.value, prepared: .some(prepared), markOnClaim: false)
                    shared.withLock { $0.summary.add(begun.summary) }
                    return begun.batch.map { Unchecked($0) }
                }
            }
        }
        var next = mayStartAnother(since: started) ? ahead(0).begun() : nil
        var index = 0
        var stop = false
        while let pending = next {
            next = nil
            let begun: Unchecked<Batch>?
            do {
                begun = try pending.wait()
            } catch {
                shared.withLock { if $0.error == nil { $0.error = error } }
                break
            }
            let goOn = !stop && !shared.withLock { $0.error != nil } && mayStartAnother(since: started)
            let following = goOn && index + 1 < work.count ? ahead(index + 1) : nil
            if let begun {
                let batch = begun.value
                if goOn {
                    if let following { batch.control?.onExhausted = { following.begin() } }
                    deliver(batch)
                } else {
                    // Begun ahead, but the server went away, a store failed, or time ran out.
                    batch.skipped = true
                }
                if summary.stop(after: batch) { stop = true }
                helper.submit {
                    do {
                        try tick.value.end(begun.value)
                        shared.withLock { $0.summary.add(begun.value.summary) }
                    } catch {
                        shared.withLock { if $0.error == nil { $0.error = error } }
                    }
                }
            }
            // The next company, begun as this batch handed out its last item (or now).
            next = stop ? following?.begunAlready() : following?.begun()
            index += 1
        }
        helper.finish()
        let result = shared.withLock { $0 }
        summary.add(result.summary)
        if let error = result.error { throw error }
    }

    /// What the overlapped batches add up to, and the first store error.
    private struct Shared: Sendable {
        var summary: TickSummary
        var error: (any Error)?
    }

    private func metadata(_ job: JobRecord) -> Logger.Metadata {
        ["job.kind": "\(job.kind.rawValue)", "job.id": "\(job.id)", "company.id": "\(job.companyID)"]
    }

    /// A company's turn up to its delivery: its lease taken, items of a dead holder resolved,
    /// its first slice claimed. No batch when there is nothing to deliver (busy, ended outside
    /// Fanout, expired, failed): then the lease was given back already.
    /// - Parameter prepared: the deliverer's `prepare` already made (its failure, if any); nil:
    ///   made here.
    private func begin(
        _ company: CompanyWork, store: any JobStore, prepared: JobFailure??, markOnClaim: Bool
    ) throws -> (batch: Batch?, summary: TickSummary) {
        var summary = TickSummary(kind: policy.kind, startedAt: Date(timeIntervalSince1970: 0))
        let job = company.job
        if job.status.isTerminal {
            try finalise(job, store: store, summary: &summary)
            return (nil, summary)
        }
        // A job whose lease can be had is never inactive: it moves now, or it waits for a retry,
        // or its server is down (not the job's fault). Only a company whose lease a live holder
        // keeps without moving is asked about inactivity, and then the lease is taken to end it.
        var inactive = false
        var acquired = try store.acquireLease(
            kind: policy.kind, companyID: company.companyID, owner: owner, stuckAfter: policy.stuckAfter, force: false)
        if acquired == nil, isInactive(job, holder: company.holder) {
            inactive = true
            acquired = try store.acquireLease(
                kind: policy.kind, companyID: company.companyID, owner: owner, stuckAfter: policy.stuckAfter,
                force: true)
        }
        guard let lease = acquired else {
            summary.busy += 1
            logger.debug("company busy: another tick holds its lease", metadata: metadata(job))
            return (nil, summary)
        }
        // Released after every normal path. When a store call throws, the lease is kept: the
        // items this tick had in flight stay marked with its token, and the tick that takes the
        // lease over after --stuck-after resolves them as in doubt instead of stranding them.
        try resolveInDoubt(lease, job: job, store: store, summary: &summary)
        if inactive {
            let reason =
                "Expired: no progress for \(Self.describe(policy.inactiveAfter)) "
                + "while a tick held the job (every delivery hung)"
            try store.finish(job, status: .failed, reason: reason, lease: lease)
            summary.jobsFailed += 1
            logger.warning("job expired for inactivity", metadata: metadata(job))
            try store.releaseLease(lease)
            return (nil, summary)
        }
        var failure: JobFailure?
        if let prepared {
            failure = prepared
        } else {
            do { try deliverer.prepare(job) } catch { failure = error }
        }
        if let failure {
            try failJob(job, reason: failure.reason, lease: lease, store: store, summary: &summary)
            try store.releaseLease(lease)
            return (nil, summary)
        }
        hooks.batchStarted(job)
        let control = BatchControl(
            policy: policy, store: store, job: job, lease: lease, hooks: hooks, markOnClaim: markOnClaim)
        // A job whose items all wait for a retry claims nothing: no batch to deliver.
        let anyDue = try control.start()
        let batch = Batch(job: job, lease: lease, store: store, control: anyDue ? control : nil)
        batch.summary = summary
        return (batch, TickSummary(kind: policy.kind, startedAt: summary.startedAt))
    }

    /// Delivers a begun batch (on the deliverer's thread).
    private func deliver(_ batch: Batch) {
        guard let control = batch.control else { return }
        batch.delivered = true
        do {
            try deliverer.deliver(batch.job, control: control)
        } catch {
            if let reason = error.jobFailure {
                batch.jobFailure = reason
            } else if error.paused {
                batch.paused = error.message
            } else {
                batch.unavailable = error.message
            }
        }
    }

    /// A company's turn after its delivery: the batch's last outcomes written, unsent items put
    /// back, the job advanced (or ended), the lease given back.
    private func end(_ batch: Batch) throws {
        var summary = batch.summary
        defer { batch.summary = summary }
        try settle(batch, summary: &summary)
        // Fenced: a no-op when the lease was lost.
        try batch.store.releaseLease(batch.lease, served: !batch.skipped)
    }

    private func settle(_ batch: Batch, summary: inout TickSummary) throws {
        let job = batch.job
        let lease = batch.lease
        let store = batch.store
        var outcome = BatchOutcome()
        if let control = batch.control {
            // A batch that claimed something (a job whose items all wait for a retry is not one).
            if batch.delivered { summary.jobsAdvanced += 1 }
            try control.finish()
            outcome = control.outcome
            if control.hasUnreportedItems && !outcome.leaseLost {
                try store.unclaim(job: job, lease: lease)
            }
            if outcome.leaseLost { return lostLease(&summary, job) }
            summary.delivered += outcome.delivered
            summary.failed += outcome.failed
            summary.suppressed += outcome.suppressed
            if let jobFailure = batch.jobFailure {
                return try failJob(job, reason: jobFailure, lease: lease, store: store, summary: &summary)
            }
            summary.retrying += outcome.retrying
            if case .ended(let status, let reason)? = outcome.stop {
                // Ended outside Fanout mid-batch: cancelled (usually) or failed by the host.
                let final: JobStatus = status == .failed ? .failed : .cancelled
                try store.finish(
                    job, status: final, reason: reason ?? (final == .failed ? "Failed" : "Cancelled"), lease: lease)
                if final == .failed { summary.jobsFailed += 1 } else { summary.jobsCancelled += 1 }
                logger.notice("job \(final.rawValue) outside Fanout: delivery stopped", metadata: metadata(job))
                return
            }
        }
        // Begun ahead and never delivered: its items went back; nothing else changed.
        if batch.skipped { return }
        guard let status = try store.advance(job, lease: lease) else { return lostLease(&summary, job) }
        if outcome.delivered + outcome.failed + outcome.retrying + outcome.suppressed == 0 && status.isRunnable {
            summary.stalled += 1
        }
        if status == .completed {
            summary.jobsCompleted += 1
            logger.info("job completed", metadata: metadata(job))
        } else if status == .cancelled || status == .failed {
            // Ended by a person between the last write and now: end its unfinished items.
            let reason = try {
                if case .held(_, let reason) = try store.check(job, lease: lease) { return reason } else { return nil }
            }()
            try store.finish(
                job, status: status, reason: reason ?? (status == .failed ? "Failed" : "Cancelled"), lease: lease)
            if status == .failed { summary.jobsFailed += 1 } else { summary.jobsCancelled += 1 }
        }
    }

    /// Fails the job (its template, its platform's credential or its list cannot go on): its
    /// unfinished items end failed with the reason, uncharged.
    private func failJob(
        _ job: JobRecord, reason: String, lease: Lease, store: any JobStore, summary: inout TickSummary
    ) throws {
        try store.finish(job, status: .failed, reason: reason, lease: lease)
        summary.jobsFailed += 1
        logger.error("job failed: \(reason)", metadata: metadata(job))
    }

    /// Ends the unfinished items of a job cancelled or failed outside Fanout (plain SQL).
    private func finalise(_ job: JobRecord, store: any JobStore, summary: inout TickSummary) throws {
        guard
            let lease = try store.acquireLease(
                kind: policy.kind, companyID: job.companyID, owner: owner, stuckAfter: policy.stuckAfter, force: false)
        else {
            summary.busy += 1
            return
        }
        let reason = job.reason.flatMap { $0.isEmpty ? nil : $0 } ?? (job.status == .cancelled ? "Cancelled" : "Failed")
        try store.finish(job, status: job.status, reason: reason, lease: lease)
        if job.status == .cancelled { summary.jobsCancelled += 1 } else { summary.jobsFailed += 1 }
        logger.info(
            "ended the unfinished items of a job \(job.status.rawValue) outside Fanout", metadata: metadata(job))
        try store.releaseLease(lease)
    }

    /// Items of the job left in flight by a tick that died (or stopped on a store error), found
    /// when its lease is taken over: those it may have handed to the server are in doubt, the
    /// rest go back to pending.
    private func resolveInDoubt(
        _ lease: Lease, job: JobRecord, store: any JobStore, summary: inout TickSummary
    ) throws {
        // A lease found free was released by a holder that put back what it had claimed.
        guard lease.tookOver else { return }
        let resolved = try store.resolveInDoubt(
            job, lease: lease, policy: policy.inDoubt, maxAttempts: policy.maxAttempts)
        guard resolved > 0 else { return }
        summary.inDoubt += resolved
        logger.warning(
            "items in flight in a tick that died are in doubt",
            metadata: metadata(job).merging(["items.in_doubt": "\(resolved)", "policy": "\(policy.inDoubt.rawValue)"]) {
                $1
            })
    }

    private func lostLease(_ summary: inout TickSummary, _ job: JobRecord) {
        summary.leaseLost = true
        logger.error("lost the lease to another tick: this tick stops writing", metadata: metadata(job))
    }

    /// Whether a live tick holds the company's lease and has made no progress on its head job for
    /// `inactiveAfter` while holding it (every transfer hangs, say). Time the job waited behind
    /// another job, for retries, through an outage (those ticks give the lease back) or while no
    /// tick ran at all is never counted: nobody held the lease then.
    private func isInactive(_ job: JobRecord, holder: LeaseHolder?) -> Bool {
        guard let holder else { return false }
        let now = databaseClock.database.addingTimeInterval((clock.now - databaseClock.local).seconds)
        // A holder silent for stuck-after is taken over instead (its items are resolved).
        guard now.timeIntervalSince(holder.heartbeat) < policy.stuckAfter.seconds else { return false }
        let since = max(job.lastProgressAt ?? holder.since, holder.since)
        return now.timeIntervalSince(since) > policy.inactiveAfter.seconds
    }

    static func describe(_ duration: Duration) -> String {
        let seconds = Int(duration.seconds.rounded())
        if seconds % 3600 == 0 && seconds >= 3600 { return "\(seconds / 3600)h" }
        if seconds % 60 == 0 && seconds >= 60 { return "\(seconds / 60)m" }
        return "\(seconds)s"
    }
}

@available(*, unavailable)
extension Tick: Sendable {}

/// A company's batch between its steps: begun (lease taken, first slice claimed), delivered,
/// ended. Used by one thread at a time: an overlapped tick hands it between its own thread and
/// the helper through the helper's queue, which orders every use.
final class Batch {
    let job: JobRecord
    let lease: Lease
    /// The connection this batch's every statement goes through.
    let store: any JobStore
    /// Nil when nothing of the job was due (all its items wait for a retry).
    let control: BatchControl?
    /// What this batch adds to the tick's summary.
    var summary = TickSummary(kind: .email, startedAt: Date(timeIntervalSince1970: 0))
    var delivered = false
    /// Begun ahead, then not delivered.
    var skipped = false
    var jobFailure: String?
    var unavailable: String?
    var paused: String?

    init(job: JobRecord, lease: Lease, store: any JobStore, control: BatchControl?) {
        self.job = job
        self.lease = lease
        self.store = store
        self.control = control
    }
}

/// The beginning of the next company's batch on the helper thread: submitted once, by whichever
/// comes first, the current batch handing out its last item or the tick moving on.
final class Ahead: Sendable {
    private let submit: @Sendable () -> Pending<Unchecked<Batch>?>
    private let pending = Mutex<Pending<Unchecked<Batch>?>?>(nil)

    init(_ submit: @escaping @Sendable () -> Pending<Unchecked<Batch>?>) {
        self.submit = submit
    }

    /// Submits the beginning, unless it was already.
    func begin() {
        _ = begun()
    }

    /// The beginning, submitted now if it was not yet.
    func begun() -> Pending<Unchecked<Batch>?> {
        pending.withLock { pending in
            if let pending { return pending }
            let submitted = submit()
            pending = submitted
            return submitted
        }
    }

    /// The beginning if it was submitted already (the tick stops: none is started now).
    func begunAlready() -> Pending<Unchecked<Batch>?>? {
        pending.withLock { $0 }
    }
}

/// A value handed to the overlapped tick's helper thread, which the tick's ordering keeps to one
/// thread at a time.
struct Unchecked<Value>: @unchecked Sendable {
    let value: Value
    init(_ value: Value) { self.value = value }
}

extension TickSummary {
    /// Adds the counts of a part of the tick (a company's turn) to this summary.
    mutating func add(_ part: TickSummary) {
        jobsAdvanced += part.jobsAdvanced
        jobsCompleted += part.jobsCompleted
        jobsFailed += part.jobsFailed
        jobsCancelled += part.jobsCancelled
        delivered += part.delivered
        failed += part.failed
        retrying += part.retrying
        suppressed += part.suppressed
        inDoubt += part.inDoubt
        busy += part.busy
        stalled += part.stalled
        leaseLost = leaseLost || part.leaseLost
    }

    /// Takes a delivered batch's outage or pause; true when the tick must stop starting batches.
    mutating func stop(after batch: Batch) -> Bool {
        unavailable = unavailable ?? batch.unavailable
        paused = paused ?? batch.paused
        return batch.unavailable != nil || batch.paused != nil
    }
}
