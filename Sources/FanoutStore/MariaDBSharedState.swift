import FanoutCore
import MariaDB

/// What every process shares beside the jobs: access tokens (`fanout_access_tokens`), request
/// rates, pauses and send counts (`fanout_rates`, `fanout_send_counts`), over a connection of its
/// own, opened on first use (a tick with no Google template, no pacing and no limits never opens it).
public final class MariaDBSharedState: AccessTokenCache, SharedRate {
    private let configuration: ConnectionConfiguration
    private var connection: Connection?
    /// Rate rows known to exist (made once per name and process).
    private var rateRows: Set<String> = []

    public init(configuration: ConnectionConfiguration) {
        self.configuration = configuration
    }

    deinit { connection?.close() }

    private func open() throws -> Connection {
        if let connection { return connection }
        let opened = try Connection(configuration)
        connection = opened
        return opened
    }

    /// The connection, with `name`'s rate row made (and its old send counts pruned) once a process.
    private func open(rate name: String) throws -> Connection {
        let connection = try open()
        if rateRows.insert(name).inserted {
            try connection.execute(SharedStateSQL.ensureRate, [name])
            try connection.execute(SharedStateSQL.pruneSends, [name])
        }
        return connection
    }

    public func token(for credential: String) throws -> (token: String, expiresAt: Double)? {
        guard let row = try open().queryFirst(SharedStateSQL.read, [credential]) else { return nil }
        return (try row.decode("access_token"), try row.decode("expires_at"))
    }

    public func store(_ token: String, expiresAt: Double, for credential: String) throws {
        try open().execute(SharedStateSQL.write, [credential, token, expiresAt])
    }

    public func reserve(_ name: String, count: Int, perSecond: Double, burst: Double) throws -> (
        start: Double, now: Double
    ) {
        let connection = try open(rate: name)
        // One statement moves the shared clock on and remembers where this reservation starts.
        try connection.execute(SharedStateSQL.reserve, [burst, Double(count) / perSecond, name])
        guard let row = try connection.queryFirst(SharedStateSQL.reserved) else { return (0, 0) }
        return (Double(sqlValue: row["start"]) ?? 0, Double(sqlValue: row["now"]) ?? 0)
    }

    public func pausedUntil(_ name: String) throws -> (until: Double, now: Double, reason: String?) {
        guard let row = try open().queryFirst(SharedStateSQL.pausedUntil, [name]) else { return (0, 0, nil) }
        return (
            Double(sqlValue: row["paused_until"]) ?? 0, Double(sqlValue: row["now"]) ?? 0,
            try row.decodeIfPresent("reason")
        )
    }

    public func throttled(_ name: String, reason: String) throws -> Double {
        let connection = try open(rate: name)
        try connection.execute(SharedStateSQL.throttled, [String(reason.prefix(300)), name])
        return try pausedUntil(name).until
    }

    public func takeSends(_ name: String, count: Int, perHour: Int?, perDay: Int?) throws -> (
        granted: Int, freeAt: Double?
    ) {
        let connection = try open(rate: name)
        return try connection.transaction {
            // The account's row lock: one process counts at a time.
            _ = try connection.queryFirst(SharedStateSQL.lockRate, [name])
            var granted = count
            var freeAt: Double?
            let row = try connection.queryFirst(SharedStateSQL.sentWithin, [name])
            for (limit, window, minutes) in [(perHour, "hour", 60), (perDay, "day", 1440)] {
                guard let limit else { continue }
                let sent = Int(try row?.decodeIfPresent("\(window)_sent", as: Int64.self) ?? 0)
                let room = max(0, limit - sent)
                if room < granted {
                    granted = room
                    freeAt = row.flatMap { Double(sqlValue: $0["\(window)_oldest"]) }.map {
                        ($0 + Double(minutes)) * 60
                    }
                }
            }
            if granted > 0 { try connection.execute(SharedStateSQL.countSends, [name, granted]) }
            return (granted, freeAt)
        }
    }

    public func returnSends(_ name: String, count: Int) throws {
        guard count > 0 else { return }
        let connection = try open(rate: name)
        try connection.execute(SharedStateSQL.returnSends, [count, count, name])
    }

    public func pause(_ name: String, seconds: Double) throws {
        let connection = try open(rate: name)
        try connection.execute(SharedStateSQL.pause, [seconds, name])
    }
}

@available(*, unavailable)
extension MariaDBSharedState: Sendable {}

enum SharedStateSQL {
    static let read = "SELECT access_token, expires_at FROM fanout_access_tokens WHERE credential = ?"
    static let write = """
        INSERT INTO fanout_access_tokens (credential, access_token, expires_at) VALUES (?, ?, ?)
        ON DUPLICATE KEY UPDATE access_token = VALUES(access_token), expires_at = VALUES(expires_at)
        """
    static let ensureRate = "INSERT IGNORE INTO fanout_rates (name, next_at) VALUES (?, 0)"
    static let pruneSends =
        "DELETE FROM fanout_send_counts WHERE name = ? AND minute < FLOOR(UNIX_TIMESTAMP(NOW(6)) / 60) - 1440 "
        + "LIMIT 10000"
    static let lockRate = "SELECT next_at FROM fanout_rates WHERE name = ? FOR UPDATE"
    /// Sends counted in the last 60 minutes and the last day, and the oldest minute with sends
    /// of each window. Parameters: name.
    static var sentWithin: String {
        let minute = "FLOOR(UNIX_TIMESTAMP(NOW(6)) / 60)"
        return """
            SELECT SUM(IF(minute > \(minute) - 60, sent, 0)) AS hour_sent, SUM(sent) AS day_sent,
                   MIN(IF(minute > \(minute) - 60 AND sent > 0, minute, NULL)) AS hour_oldest,
                   MIN(IF(sent > 0, minute, NULL)) AS day_oldest
            FROM fanout_send_counts WHERE name = ? AND minute > \(minute) - 1440
            """
    }
    static let countSends = """
        INSERT INTO fanout_send_counts (name, minute, sent) VALUES (?, FLOOR(UNIX_TIMESTAMP(NOW(6)) / 60), ?)
        ON DUPLICATE KEY UPDATE sent = sent + VALUES(sent)
        """
    /// Sends taken and not made, off the latest minute they were counted in (within the hour).
    /// Parameters: count, count, name.
    static let returnSends = """
        UPDATE fanout_send_counts SET sent = IF(sent > ?, sent - ?, 0)
        WHERE name = ? AND minute > FLOOR(UNIX_TIMESTAMP(NOW(6)) / 60) - 60
        ORDER BY minute DESC LIMIT 1
        """
    /// Parameters: burst (seconds of starts that may happen at once), seconds reserved, name.
    static let reserve = """
        UPDATE fanout_rates SET next_at = (@fanout_start := GREATEST(next_at, UNIX_TIMESTAMP(NOW(6)) - ?)) + ?
        WHERE name = ?
        """
    static let reserved = "SELECT @fanout_start AS start, UNIX_TIMESTAMP(NOW(6)) AS now"
    /// When a throttle's pause of `name` ends (0: never paused; `next_at` also moves for pacing,
    /// so it does not say). Parameters: name.
    static let pausedUntil = """
        SELECT COALESCE(MAX(IF(pause_reason IS NULL, 0, paused_at + pause_seconds)), 0) AS paused_until,
               UNIX_TIMESTAMP(NOW(6)) AS now, MAX(pause_reason) AS reason
        FROM fanout_rates WHERE name = ?
        """
    /// Assignments run left to right: the new pause length is what `next_at` adds.
    static let throttled = """
        UPDATE fanout_rates SET
          pause_seconds = IF(paused_at > UNIX_TIMESTAMP(NOW(6)) - 3600 - pause_seconds,
            LEAST(3600, pause_seconds * 2), 60),
          paused_at = UNIX_TIMESTAMP(NOW(6)),
          next_at = GREATEST(next_at, UNIX_TIMESTAMP(NOW(6)) + pause_seconds),
          pause_reason = ?
        WHERE name = ?
        """
    static let pause = "UPDATE fanout_rates SET next_at = GREATEST(next_at, UNIX_TIMESTAMP(NOW(6)) + ?) WHERE name = ?"
}
