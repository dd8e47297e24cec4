import ArgumentParser
import FanoutDelivery
import FanoutSettings
import Foundation
import Hummingbird
import Logging
import MariaDB
#if canImport(Glibc)
import Glibc
#endif

/// What the server was started with.
struct WebSettings: Sendable {
    var host: String
    var port: Int
    var readOnly: Bool
    var credentials: Credentials?
    /// The per-process token every form carries (CSRF protection without a session store).
    var formToken: String
    /// What signs recipients' unsubscribe links (nil: `/unsubscribe/…` answers 404).
    var unsubscribe: UnsubscribeSettings?
}

@main
struct FanoutWeb: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fanout-web",
        abstract: "The operator's web page: jobs and their progress, failures, reports and workers.",
        discussion: """
            Serves the jobs page (/), each job (/jobs/email/ID, /jobs/wallet/ID) with its failure \
            reasons, items and report downloads, the workers (/workers), JSON for monitoring \
            (/api/jobs, /api/jobs/KIND/ID) and /healthz (200 when the database answers, else 503). \
            Cancel and Retry failed do what 'fanout cancel' and 'fanout retry' do.

            Settings are the tick's (DB_*, or --env-file with the Laravel app's .env). \
            FANOUT_WEB_USER and FANOUT_WEB_PASSWORD turn on sign-in (HTTP basic auth; every route \
            but /healthz asks for it). Without them the page only listens on a loopback address: \
            put it behind your reverse proxy's own sign-in, or set them, before listening on any \
            other address. Changes are POSTs with a per-process form token and a same-origin check; \
            each is logged with who made it and from where.

            Example: fanout-web --env-file /var/www/app/.env --listen 127.0.0.1:8080
            """
    )

    @Option(
        name: .long,
        help: ArgumentHelp(
            "Address and port to listen on; an address other than loopback needs FANOUT_WEB_USER and "
                + "FANOUT_WEB_PASSWORD.", valueName: "host:port"))
    var listen = "127.0.0.1:8080"

    @Flag(name: .long, help: "Show everything, change nothing: no buttons, and every POST is refused.")
    var readOnly = false

    @OptionGroup var settings: SettingsOptions

    func validate() throws {
        guard Self.address(listen) != nil else {
            throw ValidationError("--listen must be host:port, such as 127.0.0.1:8080 or [::1]:8080")
        }
    }

    /// `host:port`, `[v6]:port` → host and port.
    static func address(_ text: String) -> (host: String, port: Int)? {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]),
            (0...65535).contains(port)
        else { return nil }
        var host = String(text[..<colon])
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        return host.isEmpty ? nil : (host, port)
    }

    static func isLoopback(_ host: String) -> Bool {
        host == "localhost" || host == "::1" || host.hasPrefix("127.")
    }

    func run() async throws {
        do {
            let settings = try self.settings.load()
            // As the ticks log: stderr, and FANOUT_LOG_FILE when set (cancels, retries and
            // unsubscribes from the page belong in the log operators read).
            LoggingSetup.bootstrap(format: .text, verbose: false, file: settings.logFile)
            let logger = Logger(label: "fanout-web")
            let database = try settings.database()
            let (host, port) = Self.address(listen)!
            var credentials: Credentials?
            switch (settings["FANOUT_WEB_USER"], settings["FANOUT_WEB_PASSWORD"]) {
            case (let user?, let password?): credentials = Credentials(user: user, password: password)
            case (nil, nil): credentials = nil
            default:
                throw ConfigurationError(
                    description: "FANOUT_WEB_USER and FANOUT_WEB_PASSWORD go together: set both or neither")
            }
            if credentials == nil, !Self.isLoopback(host) {
                throw ConfigurationError(
                    description: "--listen \(listen) is not a loopback address: set FANOUT_WEB_USER and "
                        + "FANOUT_WEB_PASSWORD first (anyone who reaches the page could cancel mail)")
            }
            let web = WebSettings(
                host: host, port: port, readOnly: readOnly, credentials: credentials, formToken: randomToken(bytes: 32),
                unsubscribe: try settings.unsubscribe())
            let app = WebApplication(settings: web, database: WebDatabase(configuration: database), logger: logger)
            try await app.run()
        } catch let error as ConfigurationError {
            FileHandle.standardError.write(Data("fanout-web: \(error.description)\n".utf8))
            throw ExitCode(78)
        }
    }
}
