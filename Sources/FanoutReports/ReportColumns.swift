import FanoutCore

/// A value of one report field, typed so each format writes it its own way.
public enum ReportValue: Sendable, Equatable {
    case text(String?)
    case number(Int64?)
    case flag(Bool)
    /// Unix seconds, written as ISO 8601 in UTC (`2026-12-03T17:09:37Z`).
    case time(Double?)
}

/// The fields of an item row, named as the item table names its columns, in the order every
/// format writes them (contract, "Reports").
public enum ReportColumns {
    public static func names(_ kind: JobKind) -> [String] {
        switch kind {
        case .email:
            ["id", "email", "name", "status", "attempts", "in_doubt", "response_code", "processed_at", "reason"]
        case .wallet:
            [
                "id", "card_id", "platform", "status", "attempts", "in_doubt", "http_status", "unregistered_at",
                "processed_at", "reason",
            ]
        }
    }

    public static func values(_ item: ReportItem, kind: JobKind) -> [ReportValue] {
        let code = ReportValue.number(item.code.map(Int64.init))
        switch kind {
        case .email:
            return [
                .number(Int64(item.id)), .text(item.email), .text(item.name), .text(item.status),
                .number(Int64(item.attempts)),
                .flag(item.inDoubt), code, .time(item.processedAt), .text(item.reason),
            ]
        case .wallet:
            return [
                .number(Int64(item.id)), .number(item.cardID.map { Int64(bitPattern: $0) }), .text(item.platform),
                .text(item.status),
                .number(Int64(item.attempts)), .flag(item.inDoubt), code, .time(item.unregisteredAt),
                .time(item.processedAt), .text(item.reason),
            ]
        }
    }
}
