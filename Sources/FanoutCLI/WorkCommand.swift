import ArgumentParser
import FanoutCore
import FanoutDelivery
import FanoutReports
import FanoutSettings
import FanoutStore
import Foundation
import Logging
import MariaDB

struct WorkCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "work",
        abstract: "A long-running worker: picks up new jobs within seconds; for systemd or supervisor.",
        discussion: """
            The same engine as the cron ticks (same per-company leases, same fairness), run in a \
            loop: any mix of workers and cron ticks on any number of hosts is safe. A round that \
            found work is followed by the next at once; an idle worker polls with one indexed \
            statement, backing off from 250 ms to --sleep.

            Signals: SIGTERM, SIGINT or SIGQUIT drain (no new claims, the transfers in flight \
            finish within --grace, the rest goes back to pending uncharged, exit 0); a second one \
            stops at once (items in flight are then in doubt, as after a crash). SIGUSR2 pauses \
            claiming, SIGCONT resumes. `fanout worker:restart`, `worker:pause` and \
            `worker:continue` reach every worker on every host through the database. With \
            BOUNCE_IMAP_URL set it also reads the bounce mailbox (as `fanout bounces` does) at \
            start and every BOUNCE_IMAP_EVERY (default 5m).

            Exit 0 (drained, restart requested, --max-jobs, --max-time, --stop-when-empty), 12 \
            (--memory exceeded), 75 (the database unavailable past --reconnect-deadline), 1 \
            otherwise. With NOTIFY_SOCKET set (systemd Type=notify) it sends READY=1, WATCHDOG=1 \
            and STOPPING=1. Unit and supervisor files: deploy/.
              fanout work --env-file /var/www/app/.env --name web1-1
            """
    )

    @Option(name: .long, help: ArgumentHelp("Kinds of job to work on.", valueName: "email,wallet"))
    var type: String = "email,wallet"

    @Flag(name: .long, help: "Run one tick of each kind and exit, exactly as the cron commands do.")
    var once = false

    @Flag(name: .long, help: "Exit 0 when a round finds nothing to do.")
    var stopWhenEmpty = false

    @Option(name: .long, help: ArgumentHelp("Exit 0 after this many job batches.", valueName: "n"))
    var maxJobs: Int?

    @Option(name: .long, help: ArgumentHelp("Exit 12 when resident memory exceeds this.", valueName: "MB"))
    var memory: Int?

    @Option(name: .long, help: ArgumentHelp("The longest wait between idle polls.", valueName: "duration"))
    var sleep = DurationArgument(argument: "3s")!

    @Option(
        name: .long, help: ArgumentHelp("How long a drain may take before stopping at once.", valueName: "duration"))
    var grace = DurationArgument(argument: "25s")!

    @Option(
        name: .long,
        help: ArgumentHelp("Exit 75 when the database stays unavailable this long.", valueName: "duration"))
    var reconnectDeadline = DurationArgument(argument: "2m")!

    @Option(
        name: .long, help: ArgumentHelp("This worker's name in `fanout workers` (default host-pid).", valueName: "name")
    )
    var name: String?

    @OptionGroup var rate: RateOptions
    @OptionGroup var tick: TickOptions
    @OptionGroup var settings: SettingsOptions
    @OptionGroup var logging: LoggingOptions

    var kinds: [JobKind] {
        var kinds: [JobKind] = []
        for part in type.split(separator: ",") {
            if let kind = JobKind(rawValue: part.trimmingCharacters(in: .whitespaces).lowercased()),
                !kinds.contains(kind)
            {
                kinds.append(kind)
            }
        }
        return kinds
    }

    func validate() throws {
        let parts = type.split(separator: ",")
        if parts.isEmpty || kinds.count != Set(parts.map { $0.trimmingCharacters(in: .whitespaces).lowercased() }).count
        {
            throw ValidationError("--type must be email, wallet or email,wallet")
        }
        if tick.untilDone {
            throw ValidationError("--until-done is for the cron commands: a worker runs until it is stopped")
        }
        if let maxJobs, maxJobs < 1 { throw ValidationError("--max-jobs must be 1 or more") }
        if let memory, memory < 1 { throw ValidationError("--memory must be 1 MB or more") }
        if sleep.duration < .milliseconds(250) { throw ValidationError("--sleep must be 250ms or more") }
        if grace.duration < .zero { throw ValidationError("--grace must not be negative") }
    }

    func run() throws {
        let settings = try self.settings.load()
        logging.bootstrap(settings: settings)
        let database = try settings.database()
        let email = kinds.contains(.email) ? try settings.email(connections: tick.connections) : nil
        let wallet =
            kinds.contains(.wallet)
            ? try settings.wallet(parallel: tick.connections, rate: rate.requestsPerSecond) : nil
        func connections(_ kind: JobKind) -> Int { kind == .email ? email!.connections : wallet!.parallel }
        func deliverer(_ kind: JobKind, _ logger: Logger) -> any Deliverer {
            switch kind {
            case .email:
                EmailDeliverer(
                    settings: email!, logger: logger, sharedRate: MariaDBSharedState(configuration: database))
            case .wallet:
                WalletDeliverer.platformReady(settings: wallet!, logger: logger, database: database)
            }
        }
        if once {
            for kind in kinds {
                try TickRunner.run(
                    kind: kind, policy: tick.policy(kind: kind, connections: connections(kind)), database: database,
                    untilDone: false,
                    verbose: logging.verbose
                ) { deliverer(kind, $0) }
            }
            return
        }
        var policies: [JobKind: TickPolicy] = [:]
        for kind in kinds {
            var policy = tick.policy(kind: kind, connections: connections(kind))
            // A worker's round serves every company once; --max-time is the worker's own life.
            policy.maxTime = .seconds(50)
            policies[kind] = policy
        }
        let options = Worker.Options(
            kinds: kinds, policies: policies, stopWhenEmpty: stopWhenEmpty, maxJobs: maxJobs,
            maxTime: tick.maxTime?.duration, memoryMegabytes: memory, sleep: sleep.duration, grace: grace.duration,
            name: name ?? "\(MariaDBJobStore.hostName)-\(getpid())", reconnectDeadline: reconnectDeadline.duration,
            verbose: logging.verbose, bounces: try BounceReader(settings: settings)
        )
        let exit = try Worker(options: options, database: database, deliverer: deliverer).run()
        if exit != .done { throw ExitCode(exit.rawValue) }
    }
}

struct WorkerRestartCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "worker:restart",
        abstract: "Ask every worker on every host to exit 0 after its current round (after a deploy).",
        discussion: """
            systemd (Restart=always) or supervisor (autorestart) then starts the new binary. \
            Workers started after this command are not affected.
            """
    )

    @OptionGroup var settings: SettingsOptions

    func run() throws {
        let connection = try openDatabase(settings)
        defer { connection.close() }
        try WorkerRegistry(connection: connection).requestRestart(by: requester)
        print("restart requested: every running worker exits after its current round")
    }
}

/// The kinds `worker:pause` and `worker:continue` act on, and the one thing they do.
struct PauseOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("Only this kind (default: both).", valueName: "email|wallet"))
    var type: JobKind?

    @OptionGroup var settings: SettingsOptions

    func setPaused(_ paused: Bool) throws {
        let connection = try openDatabase(settings)
        defer { connection.close() }
        let kinds = type.map { [$0] } ?? JobKind.allCases
        try WorkerRegistry(connection: connection).setPaused(kinds, paused, by: requester)
        let names = kinds.map(\.rawValue).joined(separator: ", ")
        print(paused ? "paused: \(names) (fanout worker:continue to go on)" : "claiming again: \(names)")
    }
}

struct WorkerPauseCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "worker:pause",
        abstract: "Pause claiming by every worker (all kinds, or one): batches in flight finish.",
        discussion: "Cron ticks are not paused. `fanout worker:continue` lets the workers go on."
    )

    @OptionGroup var options: PauseOptions

    func run() throws { try options.setPaused(true) }
}

struct WorkerContinueCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "worker:continue",
        abstract: "Let the workers claim again after `worker:pause`."
    )

    @OptionGroup var options: PauseOptions

    func run() throws { try options.setPaused(false) }
}

struct WorkersCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "workers",
        abstract: "List the live workers, and when cron ticks and workers last served a company."
    )

    @Option(name: .long, help: ArgumentHelp("table or json", valueName: "format"))
    var format: ListFormat = .table

    @OptionGroup var settings: SettingsOptions

    func run() throws {
        let connection = try openDatabase(settings)
        defer { connection.close() }
        let registry = WorkerRegistry(connection: connection)
        let workers = try registry.list()
        let activity = try registry.activity()
        if format == .json {
            func orNull(_ value: Any?) -> Any { value ?? NSNull() }
            let rows: [[String: Any]] = workers.map { worker in
                [
                    "name": worker.name, "host": worker.host, "pid": worker.pid, "version": worker.version,
                    "types": worker.types, "state": worker.state, "company_id": orNull(worker.companyID),
                    "job_kind": orNull(worker.jobKind), "job_id": orNull(worker.jobID), "items_done": worker.itemsDone,
                    "rss_bytes": orNull(worker.rssBytes), "started_at": ReportTime.iso(worker.startedAt),
                    "heartbeat_at": ReportTime.iso(worker.heartbeatAt),
                ]
            }
            let object: [String: Any] = [
                "workers": rows, "last_recorded_tick": orNull(activity.lastRecordedTick.map(ReportTime.iso)),
                "last_batch": orNull(activity.lastBatch.map(ReportTime.iso)),
            ]
            let data = try JSONSerialization.data(
                withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])
            print(String(decoding: data, as: UTF8.self))
            return
        }
        if workers.isEmpty {
            print("no live workers")
        } else {
            print("NAME                 HOST              PID      STATE     JOB             DONE      RSS  HEARTBEAT")
            for worker in workers {
                let job = worker.jobID.map { "\(worker.jobKind ?? "?") \($0)" } ?? "-"
                let rss = worker.rssBytes.map { "\($0 / 1_048_576) MB" } ?? "-"
                let ago = Int((activity.now - worker.heartbeatAt).rounded())
                let who = "\(pad(worker.name, 20)) \(pad(worker.host, 17)) \(pad(String(worker.pid), 8))"
                print(
                    "\(who) \(pad(worker.state, 9)) \(pad(job, 15)) \(pad(String(worker.itemsDone), 9)) "
                        + "\(pad(rss, 5)) \(ago) s ago")
            }
        }
        let since = ago(now: activity.now)
        print("last company served by any tick or worker: \(activity.lastBatch.map(since) ?? "never")")
        let recorded = activity.lastRecordedTick.map(since) ?? "never"
        print("last tick recorded (ticks that left or waited for work): \(recorded)")
    }

    private func pad(_ text: String, _ width: Int) -> String {
        text.count >= width ? text : text + String(repeating: " ", count: width - text.count)
    }

    private func ago(now: Double) -> (Double) -> String {
        { time in "\(ReportTime.iso(time)) (\(Int((now - time).rounded())) s ago)" }
    }
}

/// Who asked, for `fanout_control.requested_by`.
private var requester: String { "\(MariaDBJobStore.hostName):\(getpid())" }
