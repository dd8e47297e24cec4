#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Where jobs and items live. Every write about items and jobs is fenced by the lease: a store
/// call made with a lease that another tick has taken changes nothing.
public protocol JobStore: AnyObject {
    /// The database's clock (as of the last `companiesWithWork`, plus the time since).
    func now() throws -> Date
    /// Each company with a runnable job of `kind` and its oldest runnable job, with the lease's
    /// holder if any, in rotation order (least recently served first); also jobs cancelled or
    /// failed outside Fanout whose items are still unfinished.
    func companiesWithWork(kind: JobKind) throws -> [CompanyWork]
    /// Takes the lease on (kind, company) if it is free or its holder is stuck; nil if held.
    /// With `force`, takes it from a live holder too (to expire a job that holder is not moving).
    func acquireLease(kind: JobKind, companyID: UInt64, owner: String, stuckAfter: Duration, force: Bool) throws
        -> Lease?
    /// Resolves items of the job left in flight by a tick that died; returns how many.
    func resolveInDoubt(_ job: JobRecord, lease: Lease, policy: InDoubtPolicy, maxAttempts: Int) throws -> Int
    /// Marks up to `limit` due pending items of the job in flight for this lease and returns them;
    /// in the same transaction the job becomes processing (live from its first claim). The claim
    /// that starts the job also records that its first `marking` items may be handed over (as
    /// `write`'s `handedThrough` does), saving the write the first hand-over would wait for.
    func claim(job: JobRecord, limit: Int, lease: Lease, marking: Int) throws -> ClaimedItems
    /// Writes outcomes (none is a plain heartbeat) of items in flight for this lease, moves the
    /// job's counters and last activity with them, heartbeats the lease, and records that items
    /// of this lease with ids up to `handedThrough` may have been handed to the server. Returns
    /// the job's status afterwards, or `.lost` when another tick holds the lease (then nothing
    /// was written). A delivered item is recorded as such even when a person flipped it to
    /// cancelled while it was in flight.
    func write(_ updates: [ItemUpdate], handedThrough: UInt64, job: JobRecord, lease: Lease) throws -> LeaseCheck
    /// Items of the job this lease has in flight whose recipient a suppression added or changed
    /// after they were claimed now holds back, with why ("unsubscribe (one-click) since …").
    /// Empty, without asking the database, unless a recent `write` saw such a change (read at
    /// most every 250 ms).
    func suppressedInFlight(job: JobRecord, lease: Lease) throws -> [UInt64: String]
    /// Puts every item of the job this lease still has in flight back to pending without
    /// charging an attempt (the server, not the item, failed, or they were never handed to it).
    /// Called once every outcome of the batch was written, so those are exactly the items
    /// without one.
    func unclaim(job: JobRecord, lease: Lease) throws
    /// At the end of a batch: fills in total_items when 0 and completes the job when no item is
    /// unfinished. Returns the job's status afterwards, or nil when the lease was lost.
    func advance(_ job: JobRecord, lease: Lease) throws -> JobStatus?
    /// Ends the job with `status` (failed or cancelled) and every unfinished item with `reason`.
    func finish(_ job: JobRecord, status: JobStatus, reason: String, lease: Lease) throws
    /// Gives the lease back; `served` moves the company to the end of the rotation (false for a
    /// batch begun ahead and then not delivered).
    func releaseLease(_ lease: Lease, served: Bool) throws
    /// Records a finished tick.
    func recordTick(_ summary: TickSummary, owner: String) throws
}

extension JobStore {
    /// Gives the lease back after serving the company.
    public func releaseLease(_ lease: Lease) throws {
        try releaseLease(lease, served: true)
    }

    /// Heartbeats the lease and reads the job's status.
    public func check(_ job: JobRecord, lease: Lease) throws -> LeaseCheck {
        try write([], handedThrough: 0, job: job, lease: lease)
    }
}

/// What a claim marked in flight, and the hand-over mark it recorded with them (0: none).
public struct ClaimedItems: Sendable {
    public var items: [WorkItem]
    public var handedThrough: UInt64
    public init(_ items: [WorkItem], handedThrough: UInt64 = 0) {
        self.items = items
        self.handedThrough = handedThrough
    }
}

/// A job the deliverer cannot deliver at all (unknown or broken template).
public struct JobFailure: Error, Sendable, CustomStringConvertible {
    public var reason: String
    public init(reason: String) { self.reason = reason }
    public var description: String { reason }
}

/// The server cannot be used (connect, TLS, AUTH, closed before MAIL FROM): not the items' fault.
public struct DeliveryUnavailable: Error, Sendable, CustomStringConvertible {
    public var message: String
    /// Set when the job itself cannot go on (a platform refused the credential or its
    /// configuration): the job fails with this reason, its unsent items uncharged.
    public var jobFailure: String?
    /// Set when the server asked to wait (a throttle reply, a quota reached): not an outage;
    /// the tick ends normally and says how long (`message`).
    public var paused: Bool
    public init(message: String, jobFailure: String? = nil, paused: Bool = false) {
        self.message = message
        self.jobFailure = jobFailure
        self.paused = paused
    }
    public var description: String { message }
}

/// What a deliverer takes its items from, reports to, and asks, while it works.
///
/// `nextItem` may be called on one thread (say, one that renders messages ahead) while the others
/// are called on other threads. Nothing may be called once `deliver` has returned.
public protocol DeliveryControl: AnyObject, Sendable {
    /// The batch's next item, in claim order; nil once the batch has no more or delivery should
    /// stop. Items are claimed in slices as they are asked for, so this may wait for a slice.
    func nextItem() -> WorkItem?
    /// Asks to hand the item to the server now. Waits (briefly) until the database says the
    /// item may have been handed over and the lease is still held: `.go`; `.stop` when the batch
    /// must stop instead (cancelled, lease lost), `.skip` when the item must not be sent (its
    /// recipient was suppressed after the claim): then the item must not be handed over.
    func handOver(_ itemID: UInt64) -> HandOver
    /// Hands over the outcome of one item; it is written to the database at once.
    func report(_ outcome: ItemOutcome)
    /// A ticket covering every outcome reported so far, for `isRecorded`.
    func recordTicket() -> Int
    /// Whether the outcomes a ticket covers are in the database (or never will be: the batch
    /// cannot write any more). A connection that starts its next transfer only once its last
    /// outcome is recorded leaves at most its one transfer in flight unrecorded, whenever the
    /// process dies.
    func isRecorded(_ ticket: Int) -> Bool
    /// Runs `wake` after every write from now until the batch ends (to end waits for `isRecorded`).
    func onRecorded(_ wake: @escaping @Sendable () -> Void)
    /// Whether to go on starting new deliveries (false once the job was cancelled or the lease
    /// lost). Cheap to call often: it never waits for the store.
    func shouldContinue() -> Bool
    /// Whether the lease was lost (this process was stopped and taken over): then even what is in
    /// flight should be abandoned where it still can be, before the server takes it.
    func leaseLost() -> Bool
}

/// What `DeliveryControl.handOver` allows.
public enum HandOver: Sendable, Equatable {
    /// Hand the item to the server.
    case go
    /// Hand over nothing more: the batch stops.
    case stop
    /// Not this item: report it suppressed with this reason (a suppression that arrived after
    /// it was claimed), and go on with the next.
    case skip(reason: String)
}

/// Delivers items of one kind.
public protocol Deliverer: AnyObject {
    /// Readies the job (loads and parses its template); throws when it cannot be delivered at all.
    func prepare(_ job: JobRecord) throws(JobFailure)
    /// Delivers the items `control.nextItem()` hands out, reporting each outcome to `control`, and
    /// stops starting new deliveries when `control.shouldContinue()` turns false. Items left
    /// without an outcome are put back.
    /// - Throws: `DeliveryUnavailable` when the server itself cannot be used.
    func deliver(_ job: JobRecord, control: any DeliveryControl) throws(DeliveryUnavailable)
}

/// Where access tokens minted for a platform credential are kept between runs (the database, so
/// every process on every host reuses one token until it nearly expires).
public protocol AccessTokenCache: AnyObject {
    /// The token kept for `credential` and when it expires (Unix seconds), if any.
    func token(for credential: String) throws -> (token: String, expiresAt: Double)?
    /// Keeps a new token for `credential`, replacing the old one.
    func store(_ token: String, expiresAt: Double, for credential: String) throws
}

/// A request rate shared by every process on every host (kept in the database).
public protocol SharedRate: AnyObject {
    /// Lets no request start under `name` for `seconds` from now.
    func pause(_ name: String, seconds: Double) throws
    /// Reserves `count` request starts at `perSecond` under `name`, letting `burst` seconds' worth
    /// start at once after a quiet spell; returns when the first may start (Unix seconds, the
    /// database's clock) and the database's time now.
    func reserve(_ name: String, count: Int, perSecond: Double, burst: Double) throws -> (start: Double, now: Double)
    /// Unix seconds until which `name` is paused (the database's clock), the database's now, and
    /// the server's words that paused it.
    func pausedUntil(_ name: String) throws -> (until: Double, now: Double, reason: String?)
    /// Pauses `name` for everybody after a throttle reply: 1 minute, doubling to 1 hour while
    /// throttles repeat, back to 1 minute after an hour without one. Returns until when.
    func throttled(_ name: String, reason: String) throws -> Double
    /// Takes up to `count` sends under `name`'s hourly and daily limits (rolling 60 minutes and
    /// 24 hours, all processes together); returns how many were granted, and when the oldest
    /// counted send leaves the window that is full (Unix seconds) when fewer were.
    func takeSends(_ name: String, count: Int, perHour: Int?, perDay: Int?) throws -> (granted: Int, freeAt: Double?)
    /// Gives back `count` sends taken but not made (a batch ended first), so the limits count
    /// only what went out.
    func returnSends(_ name: String, count: Int) throws
}
