import FanoutCore
import FanoutSettings
import FanoutStore
import Foundation
import Logging
import MariaDB
import Synchronization

/// `fanout work`: the cron tick's engine run in a loop by one long-lived process. Each round
/// polls the database once; when a kind has runnable work, it runs exactly the tick cron runs
/// (same leases, same fairness, same writes), with hooks that let a signal drain it.
final class Worker: @unchecked Sendable {
    // Sendable: the monitor thread touches only `shared` and the registry (each behind its lock),
    // `notifier`, `options` and `logger`; the connections of the ticks and the deliverers are the
    // loop's alone.
    struct Options {
        var kinds: [JobKind]
        var policies: [JobKind: TickPolicy]
        var stopWhenEmpty = false
        var maxJobs: Int?
        var maxTime: Duration?
        var memoryMegabytes: Int?
        var sleep: Duration = .seconds(3)
        var grace: Duration = .seconds(25)
        var name: String
        var reconnectDeadline: Duration = .seconds(120)
        var verbose = false
        /// The bounce mailbox, read every `bounces.every` (BOUNCE_IMAP_URL set).
        var bounces: BounceReader?
    }

    /// How a worker ended, as the exit status the contract gives it.
    enum Exit: Int32 {
        case done = 0
        case memory = 12
    }

    private let options: Options
    private let database: ConnectionConfiguration
    private let makeDeliverer: (JobKind, Logger) -> any Deliverer
    private let logger = Logger(label: "fanout.worker")
    private let notifier = SystemdNotifier(environment: Settings.processEnvironment())
    private let clock = ContinuousClock()
    /// What the monitor thread reads and the loop writes.
    private let shared = Mutex(Shared())
    /// The registry's connection is used by the loop (polls) and the monitor (heartbeats).
    private let registryAccess = Mutex(())
    private var registryConnection: Connection?
    private var tickConnections: [JobKind: Connection] = [:]
    /// Each kind's two further connections, for ticks whose companies' batches overlap (opened
    /// when a tick first has two companies to serve; closed with the others).
    private var lanes: [JobKind: LaneStores] = [:]
    private var deliverers: [JobKind: any Deliverer] = [:]
    /// One token for every tick of this worker: a batch that died with the database connection
    /// is this worker's own, taken back (and its items resolved) as soon as it is reachable.
    private let owner = TickRunner.ownerToken()

    private struct Shared {
        var lastAlive = ContinuousClock.now
        var state = "running"
        var job: JobRecord?
        var itemsDone = 0
        var rowID: UInt64?
        var stopped = false
    }

    init(
        options: Options, database: ConnectionConfiguration,
        deliverer makeDeliverer: @escaping (JobKind, Logger) -> any Deliverer
    ) {
        self.options = options
        var database = database
        database.utcSession = false // the store exchanges times as Unix seconds
        self.database = database
        self.makeDeliverer = makeDeliverer
    }

    /// Runs until a signal, a limit or a restart request ends it; returns the exit status.
    func run() throws -> Exit {
        WorkerSignals.install()
        for kind in options.kinds { deliverers[kind] = makeDeliverer(kind, Logger(label: "fanout.\(kind.rawValue)")) }
        try reconnect(since: clock.now, lastError: nil)
        if WorkerSignals.draining { return .done }
        let startedAt = try withRegistry { registry in try register(registry).startedAt }
        notifier.notify("READY=1\nSTATUS=waiting for work\nMAINPID=\(getpid())")
        logger.info(
            "worker started",
            metadata: [
                "worker.name": "\(options.name)",
                "worker.types": "\(options.kinds.map(\.rawValue).joined(separator: ","))",
            ])
        let monitor = Thread { [self] in monitorLoop() }
        monitor.name = "fanout-monitor"
        monitor.start()
        defer {
            shared.withLock { $0.stopped = true }
            notifier.notify("STOPPING=1")
            // Whatever ended the loop (an error included): leases a batch of this worker still
            // holds go to the next tick at once, and the row goes.
            MariaDBJobStore.handOnLeases(of: owner, database: database)
            if let row = shared.withLock({ $0.rowID }) {
                try? withRegistry { registry in try registry.unregister(id: row) }
            }
            for connection in tickConnections.values { connection.close() }
            for lane in lanes.values { lane.close() }
            registryAccess.withLock { _ in registryConnection?.close() }
        }
        return try loop(startedAt: startedAt)
    }

    /// Adds this worker's row (again, after it was judged stale) and remembers its id.
    private func register(_ registry: WorkerRegistry) throws -> (id: UInt64, startedAt: Double) {
        let row = try registry.register(
            name: options.name, host: MariaDBJobStore.hostName, pid: getpid(), version: Fanout.version,
            types: options.kinds)
        shared.withLock { $0.rowID = row.id }
        return row
    }

    private func loop(startedAt: Double) throws -> Exit {
        let started = clock.now
        var backoff: Duration = .milliseconds(250)
        var jobsDone = 0
        var outages: [JobKind: Outage] = [:]
        var quiet: [JobKind: Quiet] = [:]
        var nextBounceRead = clock.now
        while true {
            alive()
            if let reader = options.bounces, clock.now >= nextBounceRead, !WorkerSignals.draining {
                // A long backlog is read a part at a time between rounds of sending.
                let more = readBounces(reader)
                nextBounceRead = more ? clock.now : clock.now + reader.every
                alive()
            }
            if WorkerSignals.draining {
                logger.info("drained after a stop signal")
                return .done
            }
            if let maxTime = options.maxTime, clock.now - started >= maxTime {
                logger.info("--max-time reached")
                return .done
            }
            if let limit = options.memoryMegabytes, let rss = Self.residentBytes(), rss > limit * 1_048_576 {
                logger.warning("--memory reached: \(rss / 1_048_576) MB resident, limit \(limit) MB")
                return .memory
            }
            let round: Round
            do {
                round = try self.round(startedAt: startedAt, outages: &outages, quiet: &quiet)
            } catch let error as MariaDBError where error.isUnavailable {
                try reconnect(since: clock.now, lastError: error)
                continue // drained (a stop signal while waiting) at the top of the loop
            }
            if round.restart {
                logger.info("restart requested (fanout worker:restart): exiting after the round")
                return .done
            }
            jobsDone += round.jobsAdvanced
            if let maxJobs = options.maxJobs, jobsDone >= maxJobs {
                logger.info("--max-jobs reached: \(jobsDone) job batches")
                return .done
            }
            if round.moved {
                backoff = .milliseconds(250)
                continue
            }
            if options.stopWhenEmpty && !round.paused {
                // A server that cannot be used is not "nothing to do": say so, as a tick does.
                if let outage = round.outage { throw ServiceUnavailable(description: outage) }
                logger.info("nothing to do: --stop-when-empty")
                return .done
            }
            pause(Self.jittered(backoff))
            backoff = min(backoff * 2, options.sleep)
        }
    }

    private struct Round {
        var moved = false
        var jobsAdvanced = 0
        var restart = false
        var paused = false
        /// A kind's delivery server could not be used (now, or in a wait after it could not).
        var outage: String?
    }

    /// A kind whose last tick moved nothing, and the poll's fingerprint of it then.
    private struct Quiet {
        var fingerprint: String
        var since: ContinuousClock.Instant
    }

    /// How long a kind whose tick moved nothing (items waiting for a retry, a company another
    /// tick serves) waits for its next tick when nothing about its jobs changed.
    private static let quietRecheck: Duration = .seconds(15)

    /// An SMTP or HTTP server a kind could not use, and when to try again.
    private struct Outage {
        var message: String
        var since: ContinuousClock.Instant
        var sinceWall: Date
        var retryAt: ContinuousClock.Instant
        var wait: Duration
        var lastLogged: ContinuousClock.Instant
    }

    /// One poll, then a tick of every kind with runnable work that is neither paused nor in an
    /// outage's wait.
    private func round(
        startedAt: Double, outages: inout [JobKind: Outage], quiet: inout [JobKind: Quiet]
    ) throws -> Round {
        let poll = try withRegistry { try $0.poll() }
        var round = Round()
        if let restartAt = poll.restartRequestedAt, restartAt >= startedAt {
            round.restart = true
            return round
        }
        let signalled = WorkerSignals.paused
        for kind in options.kinds where poll.runnable.contains(kind) {
            if signalled || poll.paused.contains(kind) {
                round.paused = true
                continue
            }
            if WorkerSignals.draining { break }
            if let outage = outages[kind], clock.now < outage.retryAt {
                round.outage = outage.message
                continue
            }
            let fingerprint = poll.fingerprints[kind] ?? ""
            if let last = quiet[kind], last.fingerprint == fingerprint, clock.now - last.since < Self.quietRecheck {
                continue
            }
            guard let connection = tickConnections[kind], let deliverer = deliverers[kind],
                let policy = options.policies[kind]
            else { continue }
            let kindLogger = Logger(label: "fanout.\(kind.rawValue)")
            let store = MariaDBJobStore(connection: connection, kind: kind, logger: kindLogger)
            let lane = lanes[kind] ?? LaneStores(database: database, kind: kind, logger: kindLogger)
            lanes[kind] = lane
            let tick = Tick(
                policy: policy, store: store, deliverer: deliverer, owner: owner, logger: kindLogger, hooks: hooks,
                lanes: lane.open)
            setState("running")
            let summary = try tick.run()
            shared.withLock { state in
                state.job = nil
                state.itemsDone += summary.delivered + summary.failed + summary.suppressed
            }
            if let unavailable = summary.unavailable {
                note(outage: unavailable, kind: kind, outages: &outages)
                round.outage = unavailable
                continue
            }
            if let outage = outages.removeValue(forKey: kind) {
                let seconds = Int((clock.now - outage.since).seconds.rounded())
                logger.notice("\(kind.rawValue): delivery server back after \(seconds) s")
            }
            TickRunner.log(summary, logger: kindLogger, verbose: options.verbose)
            round.jobsAdvanced += summary.jobsAdvanced
            let moved = summary.movedAnything
            round.moved = round.moved || moved
            quiet[kind] = moved ? nil : Quiet(fingerprint: fingerprint, since: clock.now)
        }
        let paused = signalled ? Set(options.kinds) : poll.paused.intersection(options.kinds)
        setState(paused.count == options.kinds.count ? "paused" : "running")
        return round
    }

    /// Backs off a kind whose server cannot be used (1 s doubling to a minute), and says so once
    /// a minute, not once a poll.
    private func note(outage message: String, kind: JobKind, outages: inout [JobKind: Outage]) {
        let now = clock.now
        if var outage = outages[kind] {
            outage.message = message
            outage.wait = min(outage.wait * 2, .seconds(60))
            outage.retryAt = now + outage.wait
            if now - outage.lastLogged >= .seconds(60) {
                outage.lastLogged = now
                let since = LocalTime.hoursMinutes(outage.sinceWall.timeIntervalSince1970)
                logger.warning("\(kind.rawValue): waiting: \(message) (since \(since))")
            }
            outages[kind] = outage
        } else {
            outages[kind] = Outage(
                message: message, since: now, sinceWall: Date(), retryAt: now + .seconds(1), wait: .seconds(1),
                lastLogged: now)
            logger.warning("\(kind.rawValue): waiting: \(message); trying again with backoff")
        }
    }

    private var hooks: TickHooks {
        TickHooks(
            stopRequested: { WorkerSignals.draining || WorkerSignals.paused },
            batchStarted: { [self] job in shared.withLock { $0.job = job } },
            alive: { [self] in shared.withLock { $0.lastAlive = .now } }
        )
    }

    /// Reads up to 100 new messages of the bounce mailbox over a connection of its own; returns
    /// whether more are waiting. A mailbox or database that cannot be read is said and tried
    /// again at the next reading, the worker goes on.
    private func readBounces(_ reader: BounceReader) -> Bool {
        do {
            let connection = try Connection(database)
            defer { connection.close() }
            let summary = try reader.readNew(connection, limit: 100) { alive() }
            if summary.read > 0 || options.verbose { logger.info("bounce mailbox: \(summary.line)") }
            return summary.more
        } catch {
            logger.warning("bounce mailbox not read (trying again in \(reader.every)): \(error)")
            return false
        }
    }

    private func alive() {
        shared.withLock { $0.lastAlive = .now }
    }

    private func setState(_ state: String) {
        let draining = WorkerSignals.draining
        shared.withLock { $0.state = draining ? "draining" : state }
    }

    /// Sleeps `duration` in short steps, so a signal is seen at once.
    private func pause(_ duration: Duration) {
        let end = clock.now + duration
        while clock.now < end, !WorkerSignals.draining {
            alive()
            Thread.sleep(forTimeInterval: min(0.05, (end - clock.now).seconds))
        }
    }

    /// (Re)opens every connection, backing off from 250 ms to 5 s; past `reconnectDeadline` from
    /// `since`, throws `DatabaseGone` (exit 75). Returns early, unconnected, on a stop signal.
    private func reconnect(since: ContinuousClock.Instant, lastError: MariaDBError?) throws {
        for connection in tickConnections.values { connection.close() }
        tickConnections = [:]
        for lane in lanes.values { lane.close() }
        lanes = [:]
        registryAccess.withLock { _ in
            registryConnection?.close()
            registryConnection = nil
        }
        var wait: Duration = .milliseconds(250)
        var error = lastError
        if let error { logger.error("database unavailable: \(error); reconnecting") }
        while true {
            alive()
            if let failure = openConnections() {
                guard failure.isUnavailable else { throw failure }
                // Refused credentials or an unknown database: settings, not an outage.
                if [1044, 1045, 1049, 1698].contains(failure.number) {
                    throw ConfigurationError(description: "database: \(failure)")
                }
                error = failure
            } else {
                if lastError != nil { logger.notice("database reachable again: resuming") }
                return
            }
            // A stop signal while the database is away: nothing is in flight; the loop drains.
            if WorkerSignals.draining { return }
            if clock.now - since >= options.reconnectDeadline {
                let seconds = Int(options.reconnectDeadline.seconds)
                throw DatabaseGone(
                    description: "database unavailable for \(seconds) s: \(error.map { "\($0)" } ?? "no connection")")
            }
            pause(Self.jittered(wait))
            wait = min(wait * 2, .seconds(5))
        }
    }

    /// Opens a connection per kind and one for the registry; nil when all are open, else the error
    /// (and none is kept).
    private func openConnections() -> MariaDBError? {
        do throws(MariaDBError) {
            for kind in options.kinds { tickConnections[kind] = try Connection(database) }
            let registry = try Connection(database)
            registryAccess.withLock { _ in registryConnection = registry }
            return nil
        } catch {
            for connection in tickConnections.values { connection.close() }
            tickConnections = [:]
            return error
        }
    }

    private func withRegistry<T>(_ body: (WorkerRegistry) throws -> T) throws -> T {
        try registryAccess.withLock { _ in
            guard let connection = registryConnection else {
                throw MariaDBError(code: .connectionLost, message: "not connected", function: "registry")
            }
            return try body(WorkerRegistry(connection: connection))
        }
    }

    /// The monitor thread: drain on a stop signal (STOPPING=1, and stop at once when `grace` runs
    /// out), WATCHDOG=1 while the loop is alive, the workers row's heartbeat every 15 s.
    private func monitorLoop() {
        var drainStarted: ContinuousClock.Instant?
        var lastWatchdog = clock.now
        var lastHeartbeat = clock.now
        var writtenState = "running"
        while true {
            Thread.sleep(forTimeInterval: 0.1)
            let now = clock.now
            let snapshot = shared.withLock { $0 }
            if snapshot.stopped { return }
            if WorkerSignals.draining {
                if drainStarted == nil {
                    drainStarted = now
                    notifier.notify("STOPPING=1\nSTATUS=draining")
                    setState("draining")
                    logger.notice(
                        "stop signal: draining (no new claims; transfers in flight finish within --grace)")
                } else if let start = drainStarted, now - start >= options.grace {
                    let line = "fanout: --grace ran out: stopping at once (transfers in flight are in doubt)"
                    logger.error("\(line)")
                    printError(line)
                    LoggingSetup.recordExit(line, status: ExitStatus.failure)
                    _exit(ExitStatus.failure)
                }
            }
            if let interval = notifier.watchdogInterval, now - lastWatchdog >= interval,
                now - snapshot.lastAlive < interval * 2
            {
                notifier.notify("WATCHDOG=1")
                lastWatchdog = now
            }
            // Every 15 s, and at once when the worker's state changes (paused, draining).
            let due = now - lastHeartbeat >= WorkerRegistry.heartbeatInterval || snapshot.state != writtenState
            if due, let rowID = snapshot.rowID {
                lastHeartbeat = now
                writtenState = snapshot.state
                let rss = Self.residentBytes()
                do {
                    try withRegistry { registry in
                        let alive = try registry.heartbeat(
                            id: rowID, state: snapshot.state, job: snapshot.job, itemsDone: snapshot.itemsDone,
                            rssBytes: rss)
                        if !alive {
                            // Judged stale while stopped or cut off: it lives, so it registers again.
                            _ = try register(registry)
                            writtenState = ""
                        }
                    }
                } catch {
                    logger.debug("worker heartbeat not written: \(error)")
                }
            }
        }
    }

    /// Resident memory from procfs (`/proc/self/statm`, in pages).
    static func residentBytes() -> Int? {
        guard let text = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return nil }
        let fields = text.split(separator: " ")
        guard fields.count > 1, let pages = Int(fields[1]) else { return nil }
        return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
    }

    /// `duration` less up to 20 %, so workers started together do not poll together; never more,
    /// so a new job waits at most `--sleep` plus one round.
    static func jittered(_ duration: Duration) -> Duration {
        duration * Double.random(in: 0.8...1.0)
    }
}

/// The database stayed unavailable past the worker's deadline: exit 75 (EX_TEMPFAIL), so the
/// supervisor starts it again later.
struct DatabaseGone: Error, CustomStringConvertible {
    var description: String
}
