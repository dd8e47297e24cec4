import ArgumentParser
import FanoutSettings

/// Logging options.
struct LoggingOptions: ParsableArguments {
    @Flag(name: .shortAndLong, help: "Log more: every company and batch, and idle ticks too.")
    var verbose = false

    @Option(name: .long, help: ArgumentHelp("Log lines as text or json.", valueName: "text|json"))
    var logFormat: LogFormatArgument = .text

    func bootstrap(settings: Settings) {
        LoggingSetup.bootstrap(format: logFormat.format, verbose: verbose, file: settings.logFile)
    }
}

struct LogFormatArgument: ExpressibleByArgument {
    let format: LogFormat
    init?(argument: String) {
        guard let format = LogFormat(rawValue: argument.lowercased()) else { return nil }
        self.format = format
    }
    init(_ format: LogFormat) { self.format = format }
    static let text = LogFormatArgument(.text)
    var defaultValueDescription: String { format.rawValue }
    static var allValueStrings: [String] { LogFormat.allCases.map(\.rawValue) }
}

/// `--rate`, for the commands that send wallet requests (the cron tick and the worker).
struct RateOptions: ParsableArguments {
    @Option(
        name: .long,
        help: ArgumentHelp(
            "Wallet: at most this many requests per second across the tick or worker, e.g. 20/s "
                + "(Google Wallet's limit).",
            valueName: "n/s"))
    var rate: String?

    var requestsPerSecond: Double? {
        guard let rate else { return nil }
        return Double(rate.hasSuffix("/s") ? String(rate.dropLast(2)) : rate)
    }

    func validate() throws {
        if rate != nil, (requestsPerSecond ?? 0) <= 0 {
            throw ValidationError("--rate must be a number of requests per second, such as 20/s")
        }
    }
}
