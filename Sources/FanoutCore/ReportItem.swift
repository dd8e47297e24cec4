/// One item row of a report, as read from the store: the item table's columns.
public struct ReportItem: Sendable {
    public var id: UInt64
    /// Email items.
    public var email: String?
    public var name: String?
    /// Wallet items.
    public var cardID: UInt64?
    public var platform: String?
    public var status: String
    public var attempts: Int
    public var inDoubt: Bool
    /// The SMTP reply code (`response_code`) or HTTP status (`http_status`) of the last attempt.
    public var code: Int?
    /// Unix seconds: when APNs said the device is gone (wallet), when the item reached its state.
    public var unregisteredAt: Double?
    public var processedAt: Double?
    public var reason: String?

    public init(
        id: UInt64, email: String? = nil, name: String? = nil, cardID: UInt64? = nil, platform: String? = nil,
        status: String, attempts: Int, inDoubt: Bool, code: Int?, unregisteredAt: Double? = nil, processedAt: Double?,
        reason: String?
    ) {
        self.id = id
        self.email = email
        self.name = name
        self.cardID = cardID
        self.platform = platform
        self.status = status
        self.attempts = attempts
        self.inDoubt = inDoubt
        self.code = code
        self.unregisteredAt = unregisteredAt
        self.processedAt = processedAt
        self.reason = reason
    }
}
