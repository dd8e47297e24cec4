import FanoutCore
import Foundation

/// A `JobStore` in memory with the documented semantics (fencing, takeover, claims in id
/// order with due retry times only), and a clock the test moves.
final class InMemoryJobStore: JobStore, @unchecked Sendable {
    // Sendable: the tick's calls come from its thread and the batch's writer thread, one at a
    // time; a test changes rows mid-batch only through `change`, under the same lock.
    private let lock = NSRecursiveLock()

    /// Changes rows while a batch runs (a person's UPDATE), safely beside the writer thread.
    func change(_ body: (InMemoryJobStore) -> Void) {
        lock.lock()
        defer { lock.unlock() }
        body(self)
    }
    struct Item {
        var id: UInt64
        var jobID: UInt64
        var status: ItemStatus = .pending
        var reason: String?
        var attempts = 0
        var claimedBy: String?
        var retryAt: Date?
        var inDoubt = false
        var code: Int?
    }

    struct Job {
        var record: JobRecord
        var total = 0
        var processed = 0
        var failed = 0
        var startedAt: Date?
        var lastProgressAt: Date?
        var completedAt: Date?
    }

    struct LeaseRow {
        var owner: String?
        var heartbeat: Date
        var acquired = Date(timeIntervalSince1970: 0)
        var servedAt: Date?
        var handedThrough: UInt64 = 0
        var prevOwner: String?
        var prevHandedThrough: UInt64 = 0
    }

    var clock = Date(timeIntervalSince1970: 1_800_000_000)
    var jobs: [UInt64: Job] = [:]
    var items: [UInt64: Item] = [:]
    var leases: [String: LeaseRow] = [:]
    var ticks: [Date] = []
    /// Makes the next `record` throw (a deadlock, a lost connection).
    var failNextRecord = false
    /// The `limit` of every claim, in order.
    private(set) var claimLimits: [Int] = []
    struct InjectedFailure: Error {}
    private var nextID: UInt64 = 1

    func advanceClock(_ seconds: Double) { clock = clock.addingTimeInterval(seconds) }

    @discardableResult
    func addJob(company: UInt64, kind: JobKind = .email, template: String = "t", items count: Int) -> UInt64 {
        let id = nextID
        nextID += 1
        jobs[id] = Job(record: JobRecord(kind: kind, id: id, companyID: company, template: template, status: .pending))
        for _ in 0..<count {
            let itemID = nextID
            nextID += 1
            items[itemID] = Item(id: itemID, jobID: id)
        }
        return id
    }

    func items(of job: UInt64) -> [Item] { items.values.filter { $0.jobID == job }.sorted { $0.id < $1.id } }
    func counts(_ job: UInt64) -> [ItemStatus: Int] {
        Dictionary(grouping: items(of: job), by: \.status).mapValues(\.count)
    }
    func status(_ job: UInt64) -> JobStatus { jobs[job]!.record.status }

    /// Whether the job's counters say what its items say.
    func countersMatch(_ job: UInt64) -> Bool {
        let all = items(of: job)
        let j = jobs[job]!
        return j.total == all.count && j.processed == all.filter { $0.status.isTerminal }.count
            && j.failed == all.filter { $0.status == .failed }.count
    }

    private func key(_ kind: JobKind, _ company: UInt64) -> String { "\(kind.rawValue):\(company)" }
    private func holds(_ lease: Lease) -> Bool { leases[key(lease.kind, lease.companyID)]?.owner == lease.owner }

    func now() throws -> Date { clock }

    func companiesWithWork(kind: JobKind) throws -> [CompanyWork] {
        lock.lock()
        defer { lock.unlock() }
        var finalise: [CompanyWork] = []
        var heads: [UInt64: Job] = [:]
        for job in jobs.values where job.record.kind == kind {
            if job.record.status.isRunnable {
                if let head = heads[job.record.companyID], head.record.id < job.record.id { continue }
                heads[job.record.companyID] = job
            } else if job.record.status != .completed && job.completedAt == nil {
                finalise.append(CompanyWork(companyID: job.record.companyID, job: job.record))
            }
        }
        let ordered = heads.values.sorted { a, b in
            let sa = leases[key(kind, a.record.companyID)]?.servedAt
            let sb = leases[key(kind, b.record.companyID)]?.servedAt
            switch (sa, sb) {
            case (nil, nil): return a.record.id < b.record.id
            case (nil, _): return true
            case (_, nil): return false
            case let (x?, y?): return x == y ? a.record.id < b.record.id : x < y
            }
        }
        return finalise.sorted { $0.job.id < $1.job.id }
            + ordered.map { job in
                var record = job.record
                if let started = job.startedAt { record.lastProgressAt = max(job.lastProgressAt ?? started, started) }
                let lease = leases[key(kind, record.companyID)]
                let holder =
                    lease?.owner == nil ? nil : LeaseHolder(since: lease!.acquired, heartbeat: lease!.heartbeat)
                return CompanyWork(companyID: record.companyID, job: record, holder: holder)
            }
    }

    func acquireLease(kind: JobKind, companyID: UInt64, owner: String, stuckAfter: Duration, force: Bool) throws
        -> Lease?
    {
        lock.lock()
        defer { lock.unlock() }
        let k = key(kind, companyID)
        guard let row = leases[k], let holder = row.owner else {
            let previous = leases[k]
            leases[k] = LeaseRow(
                owner: owner, heartbeat: clock, acquired: clock, servedAt: previous?.servedAt,
                prevOwner: previous?.prevOwner, prevHandedThrough: previous?.prevHandedThrough ?? 0)
            return Lease(kind: kind, companyID: companyID, owner: owner, tookOver: previous?.prevOwner != nil)
        }
        if holder != owner && (force || clock.timeIntervalSince(row.heartbeat) > stuckAfter.seconds) {
            leases[k] = LeaseRow(
                owner: owner, heartbeat: clock, acquired: clock, servedAt: row.servedAt, prevOwner: holder,
                prevHandedThrough: row.handedThrough)
            return Lease(kind: kind, companyID: companyID, owner: owner, tookOver: true)
        }
        return nil
    }

    func resolveInDoubt(_ job: JobRecord, lease: Lease, policy: InDoubtPolicy, maxAttempts: Int) throws -> Int {
        lock.lock()
        defer { lock.unlock() }
        guard holds(lease) else { return 0 }
        let row = leases[key(lease.kind, lease.companyID)]!
        var resolved = 0
        for (id, item) in items where item.status == .processing && item.jobID == job.id {
            if item.claimedBy == row.prevOwner && item.id > row.prevHandedThrough {
                // Claimed but never handed to the server: back to pending, uncharged.
                items[id]!.status = .pending
                items[id]!.claimedBy = nil
                continue
            }
            var changed = item
            let giveUp = policy == .atMostOnce || item.attempts + 1 >= maxAttempts
            changed.status = giveUp ? .failed : .pending
            changed.reason = "In doubt"
            changed.attempts += 1
            changed.inDoubt = true
            changed.claimedBy = nil
            changed.retryAt = nil
            items[id] = changed
            resolved += 1
        }
        recount(company: lease.companyID)
        leases[key(lease.kind, lease.companyID)]!.prevOwner = nil
        return resolved
    }

    private func recount(company: UInt64) {
        for (id, job) in jobs where job.record.companyID == company && job.record.status.isRunnable {
            let all = items(of: id)
            jobs[id]!.processed = all.filter { $0.status.isTerminal }.count
            jobs[id]!.failed = all.filter { $0.status == .failed }.count
        }
    }

    func claim(job: JobRecord, limit: Int, lease: Lease, marking: Int) throws -> ClaimedItems {
        lock.lock()
        defer { lock.unlock() }
        claimLimits.append(limit)
        guard holds(lease), let current = jobs[job.id], current.record.status.isRunnable else {
            return ClaimedItems([])
        }
        let starting = current.record.status == .pending
        var claimed: [WorkItem] = []
        for item in items(of: job.id) where claimed.count < limit {
            guard item.status == .pending, item.retryAt.map({ $0 <= clock }) ?? true else { continue }
            items[item.id]!.status = .processing
            items[item.id]!.claimedBy = lease.owner
            if jobs[job.id]!.record.status == .pending { jobs[job.id]!.record.status = .processing }
            if jobs[job.id]!.startedAt == nil { jobs[job.id]!.startedAt = clock }
            claimed.append(
                WorkItem(
                    id: item.id, jobID: job.id, attempts: item.attempts, email: "i\(item.id)@example.test",
                    inDoubt: item.inDoubt))
        }
        // The claim that starts the job marks its first items as possibly handed over.
        guard starting, marking > 0, !claimed.isEmpty else { return ClaimedItems(claimed) }
        let mark = claimed[min(marking, claimed.count) - 1].id
        leases[key(lease.kind, lease.companyID)]!.handedThrough = max(
            leases[key(lease.kind, lease.companyID)]!.handedThrough, mark)
        return ClaimedItems(claimed, handedThrough: mark)
    }

    /// Suppressions live in MariaDB only (tested through the binary).
    func suppressedInFlight(job: JobRecord, lease: Lease) throws -> [UInt64: String] { [:] }

    func write(_ updates: [ItemUpdate], handedThrough: UInt64, job: JobRecord, lease: Lease) throws -> LeaseCheck {
        lock.lock()
        defer { lock.unlock() }
        if failNextRecord && !updates.isEmpty {
            failNextRecord = false
            throw InjectedFailure()
        }
        guard holds(lease) else { return .lost }
        leases[key(lease.kind, lease.companyID)]!.heartbeat = clock
        leases[key(lease.kind, lease.companyID)]!.handedThrough = max(
            leases[key(lease.kind, lease.companyID)]!.handedThrough, handedThrough)
        for update in updates {
            guard var item = items[update.itemID], item.claimedBy == lease.owner,
                item.status == .processing || item.status == .cancelled
            else { continue }
            let delivered = update.status == job.kind.deliveredStatus
            if item.status == .cancelled && !delivered {
                item.claimedBy = nil
                items[update.itemID] = item
                continue
            }
            item.reason = item.status == .cancelled ? "Delivered before the cancel reached it" : update.reason
            item.status = update.status
            item.code = update.code
            item.attempts += 1
            item.retryAt = update.retryDelay.map { clock.addingTimeInterval($0.seconds) }
            item.claimedBy = nil
            items[update.itemID] = item
            if update.status.isTerminal { jobs[job.id]!.processed += 1 }
            if update.status == .failed { jobs[job.id]!.failed += 1 }
            jobs[job.id]!.lastProgressAt = clock
        }
        guard let current = jobs[job.id]?.record else { return .held(.cancelled, reason: "The job was deleted") }
        return .held(current.status, reason: current.status.isTerminal ? current.reason : nil)
    }

    func unclaim(job: JobRecord, lease: Lease) throws {
        lock.lock()
        defer { lock.unlock() }
        for id in items(of: job.id).map(\.id)
        where items[id]?.status == .processing && items[id]?.claimedBy == lease.owner {
            items[id]!.status = .pending
            items[id]!.claimedBy = nil
        }
    }

    func advance(_ job: JobRecord, lease: Lease) throws -> JobStatus? {
        lock.lock()
        defer { lock.unlock() }
        guard holds(lease), var current = jobs[job.id] else { return nil }
        let all = items(of: job.id)
        if current.total == 0 { current.total = all.count }
        if current.record.status.isRunnable && !all.contains(where: { !$0.status.isTerminal }) {
            current.record.status = .completed
            current.completedAt = clock
            current.processed = all.filter { $0.status.isTerminal }.count
            current.failed = all.filter { $0.status == .failed }.count
        }
        jobs[job.id] = current
        return current.record.status
    }

    func finish(_ job: JobRecord, status: JobStatus, reason: String, lease: Lease) throws {
        lock.lock()
        defer { lock.unlock() }
        guard holds(lease), var current = jobs[job.id] else { return }
        for item in items(of: job.id) where !item.status.isTerminal {
            items[item.id]!.status = status == .cancelled ? .cancelled : .failed
            items[item.id]!.reason = reason
            items[item.id]!.claimedBy = nil
        }
        let all = items(of: job.id)
        current.record.status = status
        if status != .cancelled || (current.record.reason ?? "").isEmpty { current.record.reason = reason }
        current.completedAt = clock
        if current.total == 0 { current.total = all.count }
        current.processed = all.filter { $0.status.isTerminal }.count
        current.failed = all.filter { $0.status == .failed }.count
        jobs[job.id] = current
    }

    func releaseLease(_ lease: Lease, served: Bool) throws {
        lock.lock()
        defer { lock.unlock() }
        let k = key(lease.kind, lease.companyID)
        guard leases[k]?.owner == lease.owner else { return }
        leases[k]!.owner = nil
        if served { leases[k]!.servedAt = clock }
    }

    func recordTick(_ summary: TickSummary, owner: String) throws {
        lock.lock()
        defer { lock.unlock() }
        ticks.append(summary.startedAt)
    }
}
