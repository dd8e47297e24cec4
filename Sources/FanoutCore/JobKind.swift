/// The two kinds of bulk job Fanout delivers.
public enum JobKind: String, Sendable, CaseIterable, Codable {
    case email
    case wallet

    /// The table of jobs (parents) of this kind.
    public var jobTable: String {
        switch self {
        case .email: "bulk_email_jobs"
        case .wallet: "bulk_wallet_api_jobs"
        }
    }

    /// The table of items (children) of this kind.
    public var itemTable: String {
        switch self {
        case .email: "bulk_email_job_items"
        case .wallet: "bulk_wallet_api_job_items"
        }
    }

    /// The items' foreign-key column naming their job.
    public var itemJobColumn: String {
        switch self {
        case .email: "bulk_email_job_id"
        case .wallet: "bulk_wallet_api_job_id"
        }
    }

    /// The item status that means "delivered".
    public var deliveredStatus: ItemStatus {
        switch self {
        case .email: .sent
        case .wallet: .completed
        }
    }

    /// Items per job per tick unless `--batch-size` says otherwise.
    public var defaultBatchSize: Int {
        switch self {
        case .email: 50
        case .wallet: 10
        }
    }
}
