/// The two kinds of bulk job Fanout delivers.
public enum JobKind: String, Sendable, CaseIterable, Codable {
    case email
    case wallet

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
