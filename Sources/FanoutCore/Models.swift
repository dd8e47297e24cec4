#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// A job (parent row) as the tick sees it.
public struct JobRecord: Sendable, Hashable {
    public var kind: JobKind
    public var id: UInt64
    public var companyID: UInt64
    public var template: String
    public var status: JobStatus
    public var reason: String?
    /// The last time an item of the job changed, or when it was started, whichever is later.
    public var lastProgressAt: Date?
    /// Email jobs: `marketing` or `transactional`.
    public var mailType: String?
    /// The database's installation id (`fanout migrate` makes it), carried in Message-IDs.
    public var installationID: String?
    /// The host left `total_items` 0 (Fanout fills it in when it starts the job).
    public var totalUnknown = false
    /// Email: seconds left of a pause the SMTP server asked for (a throttle reply), and its words.
    public var pauseLeft: Double?
    public var pauseReason: String?

    public init(
        kind: JobKind, id: UInt64, companyID: UInt64, template: String, status: JobStatus, reason: String? = nil,
        lastProgressAt: Date? = nil, mailType: String? = nil, installationID: String? = nil,
        pauseLeft: Double? = nil, pauseReason: String? = nil
    ) {
        self.pauseLeft = pauseLeft
        self.pauseReason = pauseReason
        self.mailType = mailType
        self.installationID = installationID
        self.kind = kind
        self.id = id
        self.companyID = companyID
        self.template = template
        self.status = status
        self.reason = reason
        self.lastProgressAt = lastProgressAt
    }
}

/// One item claimed for delivery: the item's own columns, as the host application stored them.
public struct WorkItem: Sendable, Hashable {
    public var id: UInt64
    public var jobID: UInt64
    /// Delivery attempts made before this one.
    public var attempts: Int
    /// Email items: the recipient and display name.
    public var email: String?
    public var name: String?
    /// Wallet items: the card and platform.
    public var cardID: UInt64?
    public var platform: String?
    /// The item's `data` column: JSON text, untrusted.
    public var data: String?
    /// Wallet items: the reason its last try left (how long it has been waiting, and why).
    public var reason: String?
    /// Email items: why the recipient must not be mailed ("unsubscribe (one-click) since …"),
    /// from the company's suppressions when the item was claimed.
    public var suppression: String?
    /// The item may have been delivered already by a tick that died.
    public var inDoubt: Bool

    /// The reason an item ends with when its recipient is suppressed (`why`: as `suppression`).
    public static func suppressedReason(_ why: String) -> String { "suppressed: \(why)" }

    public init(
        id: UInt64, jobID: UInt64, attempts: Int = 0, email: String? = nil, name: String? = nil, cardID: UInt64? = nil,
        platform: String? = nil, data: String? = nil, reason: String? = nil, inDoubt: Bool = false
    ) {
        self.reason = reason
        self.id = id
        self.jobID = jobID
        self.attempts = attempts
        self.email = email
        self.name = name
        self.cardID = cardID
        self.platform = platform
        self.data = data
        self.inDoubt = inDoubt
    }
}

/// What one delivery attempt of one item came to.
public struct ItemOutcome: Sendable, Hashable {
    public enum Result: Sendable, Hashable {
        /// Accepted by the server.
        case delivered
        /// Refused for good (SMTP 5xx, HTTP 4xx) or not deliverable at all (invalid address).
        case failed
        /// Refused for now (SMTP 4xx, HTTP 408/429/5xx, timeout, broken connection): try again
        /// later, not before `retryAfter` when the server said so.
        case transient(retryAfter: Duration?)
        /// Not taken, and not the item's fault: the platform asked this item to wait (APNs 429
        /// for its device). Back to pending for this long; no attempt charged.
        case waiting(Duration)
        /// Not sent, and never to be: the recipient is suppressed (email). No attempt charged,
        /// not a failure.
        case suppressed
    }

    public var itemID: UInt64
    public var result: Result
    /// The server's reply code (SMTP or HTTP), when there was one.
    public var code: Int?
    /// A line a person can act on: the server's reply, or why the item could not be sent.
    public var detail: String
    /// A reason kept even for a delivered item (one push shared by several items).
    public var note: String?

    public init(itemID: UInt64, result: Result, code: Int? = nil, detail: String, note: String? = nil) {
        self.itemID = itemID
        self.result = result
        self.code = code
        self.detail = detail
        self.note = note
    }
}

/// An item outcome as it is written: the final status and reason after the retry policy.
public struct ItemUpdate: Sendable, Hashable {
    public var itemID: UInt64
    public var status: ItemStatus
    public var reason: String?
    public var code: Int?
    /// For `pending` (retry): how long from now until the next attempt may start (the store
    /// adds it to the database's clock).
    public var retryDelay: Duration?
    /// Whether this try counts as an attempt (a wait the platform asked for does not).
    public var charged: Bool

    public init(
        itemID: UInt64, status: ItemStatus, reason: String?, code: Int?, retryDelay: Duration?, charged: Bool = true
    ) {
        self.itemID = itemID
        self.status = status
        self.reason = reason
        self.code = code
        self.retryDelay = retryDelay
        self.charged = charged
    }
}

/// A company with work for the tick: its oldest runnable job, and who holds its lease now.
public struct CompanyWork: Sendable, Hashable {
    public var companyID: UInt64
    public var job: JobRecord
    public var holder: LeaseHolder?

    public init(companyID: UInt64, job: JobRecord, holder: LeaseHolder? = nil) {
        self.companyID = companyID
        self.job = job
        self.holder = holder
    }
}

/// A tick holding a company's lease, by the database's clock.
public struct LeaseHolder: Sendable, Hashable {
    /// Since when it holds the lease.
    public var since: Date
    /// Its last sign of life.
    public var heartbeat: Date

    public init(since: Date, heartbeat: Date) {
        self.since = since
        self.heartbeat = heartbeat
    }
}

/// A held lease on (kind, company): the right to process that company's jobs.
public struct Lease: Sendable, Hashable {
    public var kind: JobKind
    public var companyID: UInt64
    public var owner: String
    /// A previous holder did not release it (it died or was stopped) and its items in flight
    /// were not resolved yet: those it may have handed to the server are in doubt.
    public var tookOver: Bool

    public init(kind: JobKind, companyID: UInt64, owner: String, tookOver: Bool) {
        self.kind = kind
        self.companyID = companyID
        self.owner = owner
        self.tookOver = tookOver
    }
}

/// What a mid-batch check found.
public enum LeaseCheck: Sendable, Hashable {
    /// The lease is still ours; the job's status and reason as they are now.
    case held(JobStatus, reason: String?)
    /// Another tick took the lease: stop, and write nothing more.
    case lost
}

/// How items that were in flight in a tick that died are resolved.
public enum InDoubtPolicy: String, Sendable, CaseIterable {
    /// Deliver them again, with the same Message-ID / Idempotency-Key (the default).
    case atLeastOnce = "at-least-once"
    /// Fail them, marked in doubt, without resending.
    case atMostOnce = "at-most-once"
}
