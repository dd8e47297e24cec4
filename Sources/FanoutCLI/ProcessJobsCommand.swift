import ArgumentParser
import FanoutCore
import FanoutDelivery
import FanoutSettings
import FanoutStore
import Logging
import MariaDB
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#endif

/// Options of the two cron ticks.
struct TickOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("Items per job per tick (default: 50 email, 10 wallet).", valueName: "n"))
    var batchSize: Int?

    @Option(
        name: .long,
        help: ArgumentHelp(
            "Stop starting new batches after this long (90s, 10m, 2h or seconds; default 50s). "
                + "A worker: exit 0 after this long.",
            valueName: "duration"))
    var maxTime: DurationArgument?

    @Option(
        name: .long,
        help: ArgumentHelp(
            "Fail a job when a live tick has held it this long without progress (every delivery hangs); "
                + "waiting, outages and cron gaps never count.",
            valueName: "duration"))
    var inactiveAfter = DurationArgument(argument: "30m")!

    @Option(
        name: .long,
        help: ArgumentHelp(
            "Take over a company's lock when its holder has shown no sign of life for this long.", valueName: "duration"
        ))
    var stuckAfter = DurationArgument(argument: "10m")!

    @Option(
        name: .long, help: ArgumentHelp("Attempts before a temporarily failing item fails for good.", valueName: "n"))
    var maxAttempts = 5

    @Option(
        name: .long,
        help: ArgumentHelp(
            "Waits before the 2nd, 3rd, … attempt of a temporarily failing item; the last repeats.", valueName: "list"))
    var retryBackoff = "1m,5m,15m,1h"

    @Option(
        name: .long,
        help: ArgumentHelp(
            "Items in flight in a tick that died: "
                + "deliver again with the same id (at-least-once) or fail them (at-most-once).",
            valueName: "policy"))
    var inDoubt: InDoubtArgument = .atLeastOnce

    @Option(
        name: .long,
        help: ArgumentHelp(
            "Parallel connections to the delivery server "
                + "(default: 4 SMTP, FANOUT_SMTP_CONNECTIONS; 8 HTTP, FANOUT_HTTP_CONNECTIONS).",
            valueName: "n"))
    var connections: Int?

    @Flag(name: .long, help: "For a person at a terminal: tick again until nothing of this kind is runnable now.")
    var untilDone = false

    func validate() throws {
        if let batchSize, !(1...100_000).contains(batchSize) {
            throw ValidationError("--batch-size must be from 1 to 100000")
        }
        if !(1...100).contains(maxAttempts) { throw ValidationError("--max-attempts must be from 1 to 100") }
        if let connections, !(1...256).contains(connections) {
            throw ValidationError("--connections must be from 1 to 256")
        }
        if stuckAfter.duration <= .zero { throw ValidationError("--stuck-after must be more than 0") }
        if inactiveAfter.duration <= .zero { throw ValidationError("--inactive-after must be more than 0") }
        if backoff == nil {
            throw ValidationError("--retry-backoff must be durations separated by commas, such as 1m,5m,15m,1h")
        }
    }

    var backoff: [Duration]? {
        let parts = retryBackoff.split(separator: ",").map { DurationArgument(argument: String($0)) }
        guard !parts.isEmpty, parts.allSatisfy({ $0 != nil }) else { return nil }
        return parts.map { $0!.duration }
    }

    /// The tick's policy; `connections` (the transfers that can start at once) is how far ahead of
    /// the last item handed over each write marks items as possibly handed over.
    func policy(kind: JobKind, connections: Int) -> TickPolicy {
        TickPolicy(
            kind: kind,
            batchSize: batchSize,
            maxTime: maxTime?.duration ?? .seconds(50),
            inactiveAfter: inactiveAfter.duration,
            stuckAfter: stuckAfter.duration,
            maxAttempts: maxAttempts,
            backoff: backoff ?? [],
            handOverWindow: connections,
            inDoubt: inDoubt.policy
        )
    }
}

struct InDoubtArgument: ExpressibleByArgument {
    let policy: InDoubtPolicy
    init?(argument: String) {
        guard let policy = InDoubtPolicy(rawValue: argument) else { return nil }
        self.policy = policy
    }
    init(_ policy: InDoubtPolicy) { self.policy = policy }
    static let atLeastOnce = InDoubtArgument(.atLeastOnce)
    var defaultValueDescription: String { policy.rawValue }
    static var allValueStrings: [String] { InDoubtPolicy.allCases.map(\.rawValue) }
}

struct EmailsProcessJobsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "emails:process-jobs",
        abstract: "The cron tick for email jobs: advance every runnable job by one batch.",
        discussion: """
            Run it from cron every minute:
              * * * * * cd /path/to/app && fanout emails:process-jobs --env-file .env

            Each company with runnable work gets one batch of its oldest job, in rotating order, \
            under a per-company lock; overlapping runs split the companies between them. Settings: \
            DB_*, MAIL_HOST, MAIL_PORT, MAIL_USERNAME, MAIL_PASSWORD, MAIL_ENCRYPTION (tls, ssl or \
            null), MAIL_FROM_ADDRESS, MAIL_FROM_NAME, FANOUT_TEMPLATES (default ./templates), \
            FANOUT_LOG_FILE, FANOUT_SMTP_CA_FILE, FANOUT_SMTP_CONNECTIONS, FANOUT_SMTP_TIMEOUT.

            Exit 0 when the tick did its work (failed items are data), 69 when the database or \
            the SMTP server cannot be used (no item is charged for it), 78 for bad settings.
            """
    )

    @OptionGroup var tick: TickOptions
    @OptionGroup var settings: SettingsOptions
    @OptionGroup var logging: LoggingOptions

    func run() throws {
        let settings = try self.settings.load()
        logging.bootstrap(settings: settings)
        let email = try settings.email(connections: tick.connections)
        let database = try settings.database()
        try TickRunner.run(
            kind: .email, policy: tick.policy(kind: .email, connections: email.connections), database: database,
            untilDone: tick.untilDone,
            verbose: logging.verbose
        ) { logger in
            EmailDeliverer(settings: email, logger: logger, sharedRate: MariaDBSharedState(configuration: database))
        }
    }
}

struct WalletProcessJobsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "wallet:process-jobs",
        abstract: "The cron tick for wallet jobs: one HTTP request per item, from the job's .http template.",
        discussion: """
            Run it from cron every minute:
              * * * * * cd /path/to/app && fanout wallet:process-jobs --env-file .env

            Templates: FANOUT_TEMPLATES/wallet/NAME.http.mustache (METHOD URL, headers, blank \
            line, body). Variables: the item's card_id and platform, every key of its data, job.id, \
            job.company_id, item.id, idempotency_key, and env.WALLET_* settings. 2xx completes an \
            item; 408, 429 and 5xx are retried later (after Retry-After); other statuses fail it \
            with the status and an excerpt of the answer. Settings: DB_*, FANOUT_TEMPLATES, \
            WALLET_*, FANOUT_HTTP_CA_FILE, FANOUT_HTTP_TIMEOUT (seconds, default 30), \
            FANOUT_HTTP_CONNECTIONS, FANOUT_HTTP_FOLLOW_REDIRECTS, FANOUT_LOG_FILE.
            """
    )

    @OptionGroup var tick: TickOptions

    @OptionGroup var rate: RateOptions
    @OptionGroup var settings: SettingsOptions
    @OptionGroup var logging: LoggingOptions

    func run() throws {
        let settings = try self.settings.load()
        logging.bootstrap(settings: settings)
        let wallet = try settings.wallet(parallel: tick.connections, rate: rate.requestsPerSecond)
        let database = try settings.database()
        try TickRunner.run(
            kind: .wallet, policy: tick.policy(kind: .wallet, connections: wallet.parallel), database: database,
            untilDone: tick.untilDone,
            verbose: logging.verbose
        ) { logger in
            WalletDeliverer.platformReady(settings: wallet, logger: logger, database: database)
        }
    }
}

/// Runs ticks of one kind and turns their summaries into log lines and an exit code.
enum TickRunner {
    static func run(
        kind: JobKind,
        policy: TickPolicy,
        database: ConnectionConfiguration,
        untilDone: Bool,
        verbose: Bool,
        deliverer makeDeliverer: (Logger) -> any Deliverer
    ) throws {
        let logger = Logger(label: "fanout.\(kind.rawValue)")
        var database = database
        database.utcSession = false // the store exchanges times as Unix seconds
        let connection = try Connection(database)
        defer { connection.close() }
        let store = MariaDBJobStore(connection: connection, kind: kind, logger: logger)
        let lanes = LaneStores(database: database, kind: kind, logger: logger)
        defer { lanes.close() }
        let deliverer = makeDeliverer(logger)
        let progress = ProgressLine(enabled: untilDone && isatty(2) == 1)
        var totals = (delivered: 0, failed: 0, retrying: 0, suppressed: 0, ticks: 0)
        defer { progress.clear() }
        while true {
            let owner = ownerToken()
            let tick = Tick(
                policy: policy, store: store, deliverer: deliverer, owner: owner, logger: logger, lanes: lanes.open)
            let summary: TickSummary
            do {
                summary = try tick.run()
            } catch {
                // A tick that stops on an error (the database went away mid-batch, a conflict)
                // gives the companies it held to the next tick now, not after --stuck-after.
                let handed = MariaDBJobStore.handOnLeases(of: owner, database: database)
                if handed > 0 {
                    logger.notice("handed \(handed) compan\(handed == 1 ? "y" : "ies") on to the next tick")
                }
                throw error
            }
            progress.clear()
            if let unavailable = summary.unavailable {
                // Exit 69 with one line on stderr: the reason, not a summary of a tick that stopped.
                if verbose { log(summary, logger: logger, verbose: verbose) }
                throw ServiceUnavailable(description: unavailable)
            }
            if let paused = summary.paused { logger.notice("\(paused)") }
            log(summary, logger: logger, verbose: verbose)
            totals.ticks += 1
            totals.delivered += summary.delivered
            totals.failed += summary.failed
            totals.retrying += summary.retrying
            totals.suppressed += summary.suppressed
            progress.show(
                "tick \(totals.ticks): \(totals.delivered) delivered, \(totals.failed) failed, "
                    + (totals.suppressed > 0 ? "\(totals.suppressed) suppressed, " : "")
                    + "\(totals.retrying) waiting for a retry"
            )
            if summary.leaseLost {
                throw UserError(
                    description:
                        "this tick lost its lock to another tick (it was paused past --stuck-after) and stopped writing"
                )
            }
            guard untilDone, !summary.isIdle else { return }
            if !summary.movedAnything {
                // Only companies busy in another tick (which end soon: look again shortly) or
                // retries due later (look again in a second).
                usleep(summary.busy > 0 ? 50_000 : 1_000_000)
            }
        }
    }

    static func log(_ summary: TickSummary, logger: Logger, verbose: Bool) {
        if summary.isIdle {
            if verbose { logger.debug("idle: no runnable \(summary.kind.rawValue) jobs") }
            return
        }
        var metadata: Logger.Metadata = [
            "job.kind": "\(summary.kind.rawValue)",
            "companies": "\(summary.companies)",
            "jobs.advanced": "\(summary.jobsAdvanced)",
            "items.delivered": "\(summary.delivered)",
            "items.failed": "\(summary.failed)",
            "items.retrying": "\(summary.retrying)",
        ]
        if summary.suppressed > 0 { metadata["items.suppressed"] = "\(summary.suppressed)" }
        if summary.jobsCompleted > 0 { metadata["jobs.completed"] = "\(summary.jobsCompleted)" }
        if summary.jobsFailed > 0 { metadata["jobs.failed"] = "\(summary.jobsFailed)" }
        if summary.jobsCancelled > 0 { metadata["jobs.cancelled"] = "\(summary.jobsCancelled)" }
        if summary.inDoubt > 0 { metadata["items.in_doubt"] = "\(summary.inDoubt)" }
        if summary.busy > 0 { metadata["companies.busy"] = "\(summary.busy)" }
        logger.info("tick done", metadata: metadata)
    }

    /// A token unique to this tick: host, pid, time and randomness.
    static func ownerToken() -> String {
        var random = SystemRandomNumberGenerator()
        let suffix = String(random.next() & 0xFFFF_FFFF, radix: 36)
        return "\(MariaDBJobStore.hostName.prefix(30)):\(getpid()):\(suffix)"
    }
}

extension WalletDeliverer {
    /// A wallet deliverer whose access tokens and Google rate are shared through the database.
    static func platformReady(settings: WalletSettings, logger: Logger, database: ConnectionConfiguration)
        -> WalletDeliverer
    {
        let shared = MariaDBSharedState(configuration: database)
        return WalletDeliverer(settings: settings, logger: logger, tokenCache: shared, sharedRate: shared)
    }
}
