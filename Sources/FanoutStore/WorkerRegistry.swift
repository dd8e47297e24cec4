import FanoutCore
import MariaDB

/// What one poll of an idle worker learns, in one statement: which kinds have runnable jobs,
/// whether a restart was asked for, which kinds operators paused.
public struct WorkerPoll: Sendable {
    public var runnable: Set<JobKind>
    /// Per kind, what changes when a job is added, ends or is ended outside Fanout: a kind whose
    /// last tick moved nothing needs no new tick until it changes (or a while passed).
    public var fingerprints: [JobKind: String]
    public var paused: Set<JobKind>
    /// Unix seconds of the last `worker:restart`, if any.
    public var restartRequestedAt: Double?
}

/// One row of `fanout workers`.
public struct WorkerRow: Sendable {
    public var id: UInt64
    public var name: String
    public var host: String
    public var pid: Int
    public var version: String
    public var types: String
    public var state: String
    public var companyID: UInt64?
    public var jobKind: String?
    public var jobID: UInt64?
    public var itemsDone: Int
    public var rssBytes: Int?
    public var startedAt: Double
    public var heartbeatAt: Double
}

/// When cron ticks and workers were last seen on this database.
public struct ActivitySummary: Sendable {
    /// Unix seconds of the last recorded tick (ticks that had work to leave or wait for).
    public var lastRecordedTick: Double?
    /// Unix seconds of the last company batch any tick or worker finished.
    public var lastBatch: Double?
    public var now: Double
}

/// The workers' rows and the operators' requests to every worker (`fanout_workers`,
/// `fanout_control`). A row whose heartbeat is older than `staleAfter` belongs to a worker that
/// died; it is deleted by the next worker that starts and by `workers`.
public struct WorkerRegistry {
    private let connection: Connection
    public static let heartbeatInterval: Duration = .seconds(15)
    /// Eight missed heartbeats.
    public static let staleAfterSeconds = 120

    public init(connection: Connection) {
        self.connection = connection
    }

    /// Registers a worker; returns its row id and the database's time (its start).
    public func register(name: String, host: String, pid: Int32, version: String, types: [JobKind]) throws -> (
        id: UInt64, startedAt: Double
    ) {
        try connection.execute(WorkerSQL.deleteStale, [Self.staleAfterSeconds])
        let id = try connection.execute(
            WorkerSQL.insert, [name, host, Int(pid), version, types.map(\.rawValue).joined(separator: ",")]
        ).lastInsertID
        let row = try connection.queryFirst(WorkerSQL.startedAt, [id])
        return (id, row.flatMap { Double(sqlValue: $0["started"]) } ?? 0)
    }

    /// The worker is alive: its state, where it is, what it has done. False when its row is
    /// gone (judged stale by another worker while this one was stopped or cut off).
    public func heartbeat(
        id: UInt64, state: String, job: JobRecord?, itemsDone: Int, rssBytes: Int?
    ) throws -> Bool {
        try connection.execute(
            WorkerSQL.heartbeat,
            [state, job?.companyID, job?.kind.rawValue, job?.id, itemsDone, rssBytes, id]
        ).affectedRows > 0
    }

    public func unregister(id: UInt64) throws {
        try connection.execute(WorkerSQL.delete, [id])
    }

    /// One indexed statement: runnable work per kind, pauses, the last restart request.
    public func poll() throws -> WorkerPoll {
        guard let row = try connection.queryFirst(WorkerSQL.poll) else {
            throw MariaDBError(code: .typeMismatch, number: 0, message: "the poll returned no row", function: "poll")
        }
        var runnable: Set<JobKind> = []
        var paused: Set<JobKind> = []
        var fingerprints: [JobKind: String] = [:]
        for kind in JobKind.allCases {
            let newest = try row.decodeIfPresent("\(kind.rawValue)_newest", as: UInt64.self) ?? 0
            let unfinished = try row.decode("\(kind.rawValue)_unfinished", as: Int.self)
            let ended = try row.decode("\(kind.rawValue)_ended", as: Int.self)
            // Runnable as the tick's `companiesWithWork` sees it: unfinished jobs, and jobs ended
            // outside Fanout whose items still need ending.
            if unfinished > 0 || ended > 0 { runnable.insert(kind) }
            fingerprints[kind] = "\(newest)/\(unfinished)/\(ended)"
            if try row.decode("\(kind.rawValue)_paused", as: Int.self) != 0 { paused.insert(kind) }
        }
        return WorkerPoll(
            runnable: runnable, fingerprints: fingerprints, paused: paused,
            restartRequestedAt: Double(sqlValue: row["restart_at"]))
    }

    /// Asks every worker started before now to exit after its round.
    public func requestRestart(by requester: String) throws {
        try connection.execute(WorkerSQL.request, ["restart", requester])
    }

    /// Pauses (or lets go on) the claiming of these kinds by every worker.
    public func setPaused(_ kinds: [JobKind], _ paused: Bool, by requester: String) throws {
        for kind in kinds {
            if paused {
                try connection.execute(WorkerSQL.request, ["pause:\(kind.rawValue)", requester])
            } else {
                try connection.execute(WorkerSQL.withdraw, ["pause:\(kind.rawValue)"])
            }
        }
    }

    /// The live workers (stale rows deleted first), oldest first.
    public func list() throws -> [WorkerRow] {
        try connection.execute(WorkerSQL.deleteStale, [Self.staleAfterSeconds])
        return try connection.query(WorkerSQL.list).map { row in
            WorkerRow(
                id: try row.decode("id"), name: try row.decode("name"), host: try row.decode("host"),
                pid: try row.decode("pid"), version: try row.decode("version"), types: try row.decode("types"),
                state: try row.decode("state"), companyID: try row.decodeIfPresent("company_id"),
                jobKind: try row.decodeIfPresent("job_kind"), jobID: try row.decodeIfPresent("job_id"),
                itemsDone: try row.decode("items_done"), rssBytes: try row.decodeIfPresent("rss_bytes"),
                startedAt: Double(sqlValue: row["started"]) ?? 0, heartbeatAt: Double(sqlValue: row["heartbeat"]) ?? 0
            )
        }
    }

    /// When cron ticks and workers last did something here.
    public func activity() throws -> ActivitySummary {
        let row = try connection.queryFirst(WorkerSQL.activity)
        return ActivitySummary(
            lastRecordedTick: row.flatMap { Double(sqlValue: $0["last_tick"]) },
            lastBatch: row.flatMap { Double(sqlValue: $0["last_batch"]) },
            now: row.flatMap { Double(sqlValue: $0["now"]) } ?? 0
        )
    }
}

enum WorkerSQL {
    /// In Unix seconds: the connection's time zone (and its DST jumps) plays no part.
    static let deleteStale =
        "DELETE FROM fanout_workers WHERE UNIX_TIMESTAMP(heartbeat_at) < UNIX_TIMESTAMP(NOW(6)) - ?"
    static let insert = """
        INSERT INTO fanout_workers (name, host, pid, version, types, state, started_at, heartbeat_at)
        VALUES (?, ?, ?, ?, ?, 'running', NOW(6), NOW(6))
        """
    static let startedAt = "SELECT UNIX_TIMESTAMP(started_at) AS started FROM fanout_workers WHERE id = ?"
    static let heartbeat = """
        UPDATE fanout_workers SET heartbeat_at = NOW(6), state = ?, company_id = ?, job_kind = ?, job_id = ?,
          items_done = ?, rss_bytes = ?
        WHERE id = ?
        """
    static let delete = "DELETE FROM fanout_workers WHERE id = ?"
    static let request = """
        INSERT INTO fanout_control (name, requested_at, requested_by) VALUES (?, NOW(6), ?)
        ON DUPLICATE KEY UPDATE requested_at = NOW(6), requested_by = VALUES(requested_by)
        """
    static let withdraw = "DELETE FROM fanout_control WHERE name = ?"

    /// Per kind, through the (status, completed_at) index: the newest unfinished job, how many
    /// are unfinished, how many ended outside Fanout wait to be closed (both runnable work and
    /// what `WorkerPoll.fingerprints` compares come from these three).
    private static func counts(_ kind: JobKind) -> String {
        let jobs = JobTables(kind: kind).jobs
        let unfinished = "FROM \(jobs) WHERE status IN \(JobTables.unfinished)"
        return """
            (SELECT MAX(id) \(unfinished)) AS \(kind.rawValue)_newest,
              (SELECT COUNT(*) \(unfinished)) AS \(kind.rawValue)_unfinished,
              (SELECT COUNT(*) FROM \(jobs) WHERE \(JobTables.endedOutside)) AS \(kind.rawValue)_ended
            """
    }

    static let poll = """
        SELECT \(counts(.email)), \(counts(.wallet)),
          EXISTS (SELECT 1 FROM fanout_control WHERE name = 'pause:email') AS email_paused,
          EXISTS (SELECT 1 FROM fanout_control WHERE name = 'pause:wallet') AS wallet_paused,
          (SELECT UNIX_TIMESTAMP(requested_at) FROM fanout_control WHERE name = 'restart') AS restart_at
        """
    static let list = """
        SELECT id, name, host, pid, version, types, state, company_id, job_kind, job_id, items_done, rss_bytes,
          UNIX_TIMESTAMP(started_at) AS started, UNIX_TIMESTAMP(heartbeat_at) AS heartbeat
        FROM fanout_workers ORDER BY started_at, id
        """
    static let activity = """
        SELECT (SELECT UNIX_TIMESTAMP(MAX(started_at)) FROM fanout_ticks) AS last_tick,
          (SELECT UNIX_TIMESTAMP(MAX(served_at)) FROM fanout_leases) AS last_batch,
          UNIX_TIMESTAMP(NOW(6)) AS now
        """
}
