#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Logging

/// One cron tick for one kind of job: every company with runnable work gets one batch of its
/// oldest runnable job, in rotating order, until `maxTime` says stop starting new batches.
///
/// The tick knows nothing of SQL or sockets: it talks to a `JobStore` and a `Deliverer`.
public final class Tick {
    private let policy: TickPolicy
    private let store: any JobStore
    private let deliverer: any Deliverer
    private let logger: Logger
    private let owner: String
    private let hooks: TickHooks
    private let clock = ContinuousClock()

    /// - Parameters:
    ///   - owner: this tick's token, unique across hosts and time (a worker keeps one for all its
    ///     ticks).
    ///   - hooks: a worker's way to drain the tick and hear where it is.
    public init(
        policy: TickPolicy, store: any JobStore, deliverer: any Deliverer, owner: String, logger: Logger,
        hooks: TickHooks = .none
    ) {
        self.policy = policy
        self.store = store
        self.deliverer = deliverer
        self.owner = owner
        self.logger = logger
        self.hooks = hooks
    }

    /// Runs the tick. Store errors (the database went away) are thrown; a delivery server that
    /// cannot be used ends the tick early with `summary.unavailable` set.
    public func run() throws -> TickSummary {
        let started = clock.now
        let work = try store.companiesWithWork(kind: policy.kind)
        var summary = TickSummary(kind: policy.kind, startedAt: try store.now())
        summary.companies = work.count
        if work.isEmpty { return summary }
        for company in work {
            hooks.alive()
            if hooks.stopRequested() { break }
            if clock.now - started >= policy.maxTime {
                logger.info(
                    "max time reached: leaving the other companies to the next tick",
                    metadata: ["tick.max_time": "\(policy.maxTime)"])
                break
            }
            try advance(company, summary: &summary)
            // The server is gone, or asked the account to wait: the other companies wait too.
            if summary.unavailable != nil || summary.paused != nil { break }
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

    private func metadata(_ job: JobRecord) -> Logger.Metadata {
        ["job.kind": "\(job.kind.rawValue)", "job.id": "\(job.id)", "company.id": "\(job.companyID)"]
    }

    private func advance(_ company: CompanyWork, summary: inout TickSummary) throws {
        let job = company.job
        if job.status.isTerminal {
            try finalise(job, summary: &summary)
            return
        }
        // A job whose lease can be had is never inactive: it moves now, or it waits for a retry,
        // or its server is down (not the job's fault). Only a company whose lease a live holder
        // keeps without moving is asked about inactivity, and then the lease is taken to end it.
        var inactive = false
        var acquired = try store.acquireLease(
            kind: policy.kind, companyID: company.companyID, owner: owner, stuckAfter: policy.stuckAfter, force: false)
        if acquired == nil, try isInactive(job, holder: company.holder) {
            inactive = true
            acquired = try store.acquireLease(
                kind: policy.kind, companyID: company.companyID, owner: owner, stuckAfter: policy.stuckAfter,
                force: true)
        }
        guard let lease = acquired else {
            summary.busy += 1
            logger.debug("company busy: another tick holds its lease", metadata: metadata(job))
            return
        }
        // Released after every normal path. When a store call throws, the lease is kept: the
        // items this tick had in flight stay marked with its token, and the tick that takes the
        // lease over after --stuck-after resolves them as in doubt instead of stranding them.
        try work(job, lease: lease, inactive: inactive, summary: &summary)
        try store.releaseLease(lease) // fenced: a no-op when the lease was lost
    }

    /// One company's turn, under its lease.
    private func work(_ job: JobRecord, lease: Lease, inactive: Bool, summary: inout TickSummary) throws {
        try resolveInDoubt(lease, job: job, summary: &summary)
        if inactive {
            let reason =
                "Expired: no progress for \(Self.describe(policy.inactiveAfter)) "
                + "while a tick held the job (every delivery hung)"
            try store.finish(job, status: .failed, reason: reason, lease: lease)
            summary.jobsFailed += 1
            logger.warning("job expired for inactivity", metadata: metadata(job))
            return
        }
        do {
            try deliverer.prepare(job)
        } catch {
            return try failJob(job, reason: error.reason, lease: lease, summary: &summary)
        }
        hooks.batchStarted(job)
        let control = BatchControl(policy: policy, store: store, job: job, lease: lease, hooks: hooks)
        let anyDue = try control.start()
        var outcome = BatchOutcome()
        if anyDue {
            // A batch that claimed something (a job whose items all wait for a retry is not one).
            summary.jobsAdvanced += 1
            var jobFailure: String?
            do {
                try deliverer.deliver(job, control: control)
            } catch {
                if let reason = error.jobFailure {
                    jobFailure = reason
                } else if error.paused {
                    summary.paused = error.message
                } else {
                    summary.unavailable = error.message
                }
            }
            try control.finish()
            outcome = control.outcome
            if control.hasUnreportedItems && !outcome.leaseLost {
                try store.unclaim(job: job, lease: lease)
            }
            if outcome.leaseLost { return lostLease(&summary, job) }
            summary.delivered += outcome.delivered
            summary.failed += outcome.failed
            summary.suppressed += outcome.suppressed
            if let jobFailure { return try failJob(job, reason: jobFailure, lease: lease, summary: &summary) }
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
    private func failJob(_ job: JobRecord, reason: String, lease: Lease, summary: inout TickSummary) throws {
        try store.finish(job, status: .failed, reason: reason, lease: lease)
        summary.jobsFailed += 1
        logger.error("job failed: \(reason)", metadata: metadata(job))
    }

    /// Ends the unfinished items of a job cancelled or failed outside Fanout (plain SQL).
    private func finalise(_ job: JobRecord, summary: inout TickSummary) throws {
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
    private func resolveInDoubt(_ lease: Lease, job: JobRecord, summary: inout TickSummary) throws {
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
    private func isInactive(_ job: JobRecord, holder: LeaseHolder?) throws -> Bool {
        guard let holder else { return false }
        let now = try store.now()
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
