import FanoutCore

/// The tables of one kind of job as the contract names them: the only place in the product that
/// knows those names. Every name here is a constant, never input.
struct JobTables {
    let kind: JobKind

    /// The jobs (parents).
    var jobs: String {
        switch kind {
        case .email: "bulk_email_jobs"
        case .wallet: "bulk_wallet_api_jobs"
        }
    }

    /// The items (children).
    var items: String {
        switch kind {
        case .email: "bulk_email_job_items"
        case .wallet: "bulk_wallet_api_job_items"
        }
    }

    /// This database's installation id (`fanout migrate` makes it), as a scalar subquery.
    static let installationID = "(SELECT id FROM fanout_installation LIMIT 1)"

    /// The items' column naming their job.
    var jobColumn: String {
        switch kind {
        case .email: "bulk_email_job_id"
        case .wallet: "bulk_wallet_api_job_id"
        }
    }

    /// The column an item's reply code goes to: the contract's `http_status` for wallet items,
    /// Fanout's `response_code` for email items.
    var codeColumn: String { kind == .wallet ? "http_status" : "response_code" }

    /// The columns that say who or what an item is for.
    var targetColumns: (first: String, second: String) {
        kind == .email ? ("email", "name") : ("card_id", "platform")
    }

    /// Statuses an item does not leave, as an SQL list (a sent email may still become bounced).
    var terminal: String {
        kind == .email
            ? "('sent', 'failed', 'cancelled', 'suppressed', 'bounced')" : "('completed', 'failed', 'cancelled')"
    }

    /// Statuses `failed_items` counts, as an SQL list: email's bounced too.
    var failing: String { kind == .email ? "('failed', 'bounced')" : "('failed')" }

    /// Statuses of a job (or item) still to be worked on, as an SQL list.
    static let unfinished = "('pending', 'processing')"

    /// Jobs cancelled or failed outside Fanout whose items still need ending: runnable work too.
    static let endedOutside = "status IN ('cancelled', 'failed') AND completed_at IS NULL"

    /// Which job counter `counted` computes.
    enum Counter {
        case processed, failed, total
    }

    /// A job counter counted from its items, for the job row aliased `j` (correlated, so inside
    /// an `IF` it only runs when its branch is taken).
    func counted(_ counter: Counter) -> String {
        let condition =
            switch counter {
            case .processed: " AND i.status IN \(terminal)"
            case .failed: " AND i.status IN \(failing)"
            case .total: ""
            }
        return "(SELECT COUNT(*) FROM \(items) i WHERE i.\(jobColumn) = j.id\(condition))"
    }

    /// `processed_items` and `failed_items` set from the items of the job row aliased `j`.
    var recountedCounters: String {
        "j.processed_items = \(counted(.processed)), j.failed_items = \(counted(.failed))"
    }

    /// `total_items` counted from the items when the host left it 0.
    var filledTotal: String { "j.total_items = IF(j.total_items = 0, \(counted(.total)), j.total_items)" }
}

/// The statements of one kind of job (the tick's, the operators', the reports'), with the
/// names of that kind's tables at hand.
protocol KindStatements {
    var kind: JobKind { get }
}

extension KindStatements {
    var tables: JobTables { JobTables(kind: kind) }
    var jobs: String { tables.jobs }
    var items: String { tables.items }
    var fk: String { tables.jobColumn }
    var unfinished: String { JobTables.unfinished }

    /// `count` placeholders for an IN list.
    func list(_ count: Int) -> String { Array(repeating: "?", count: count).joined(separator: ", ") }
}
