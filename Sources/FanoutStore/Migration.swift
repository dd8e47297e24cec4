/// One numbered schema change from `sql/migrations`.
public struct Migration: Sendable, Hashable {
    public let version: Int
    public let name: String
    /// The file it comes from, e.g. `002_fanout_columns.sql`.
    public let file: String
    public let sql: String
}
