import Configuration
import Curl
import DKIM
import FanoutDelivery
import MariaDB
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#endif

/// Settings with Laravel's names: the process environment over an optional `.env` file, read
/// through swift-configuration (environment provider first, then the file's values).
///
/// Secrets (`*PASSWORD*`, `*TOKEN*`, `*SECRET*`, `*_KEY`) are marked secret for
/// swift-configuration and only ever handed to the libraries; no message built here includes them.
public struct Settings: Sendable {
    /// Every value, environment over file, for what a reader cannot list (`WALLET_*`).
    private let values: [String: String]
    private let reader: ConfigReader
    private let environmentNames: Set<String>
    private let envFile: String?

    public init(environment: [String: String], file: [String: String] = [:], envFile: String? = nil) {
        values = file.merging(environment) { _, real in real }
        environmentNames = Set(environment.keys)
        self.envFile = envFile
        let secrets = SecretsSpecifier<String, String>.dynamic { key, _ in Settings.isSecret(key) }
        reader = ConfigReader(providers: [
            EnvironmentVariablesProvider(environmentVariables: environment, secretsSpecifier: secrets),
            EnvironmentVariablesProvider(environmentVariables: file, secretsSpecifier: secrets),
        ])
    }

    /// Whether a setting's value must never be shown: passwords, tokens, keys, and any free-form
    /// `WALLET_*` value except those whose name says it is an address (`…_URL`, `…_HOST`).
    public static func isSecret(_ name: String) -> Bool {
        let upper = name.uppercased()
        if upper.hasPrefix("WALLET_") { return !(upper.hasSuffix("_URL") || upper.hasSuffix("_HOST")) }
        return upper.contains("PASSWORD") || upper.contains("TOKEN") || upper.contains("SECRET")
            || upper.hasSuffix("_KEY")
    }

    /// The process environment, over the `.env` file at `envFile` when given.
    public static func load(envFile: String?) throws -> Settings {
        let environment = processEnvironment()
        guard let envFile else { return Settings(environment: environment) }
        guard let data = FileManager.default.contents(atPath: envFile) else {
            throw ConfigurationError(
                description: "cannot read --env-file \(envFile): \(String(cString: strerror(errno)))")
        }
        let parsed: [String: String]
        do {
            parsed = try DotEnv.parse(String(decoding: data, as: UTF8.self), environment: environment)
        } catch {
            throw ConfigurationError(description: "--env-file \(envFile): \(error)")
        }
        return Settings(environment: environment, file: parsed, envFile: envFile)
    }

    public static func processEnvironment() -> [String: String] {
        var values: [String: String] = [:]
        var pointer = environ
        while let entry = pointer.pointee {
            let text = String(cString: entry)
            if let equals = text.firstIndex(of: "=") {
                values[String(text[..<equals])] = String(text[text.index(after: equals)...])
            }
            pointer += 1
        }
        return values
    }

    /// The value of a Laravel-style name (`DB_HOST` is swift-configuration's key `db.host`);
    /// nil when unset, empty or `null`.
    public subscript(name: String) -> String? {
        let key = ConfigKey(name.lowercased().split(separator: "_").map(String.init))
        guard let value = reader.string(forKey: key, isSecret: Self.isSecret(name)), !value.isEmpty, value != "null"
        else { return nil }
        return value
    }

    public func required(_ name: String, _ purpose: String) throws(ConfigurationError) -> String {
        guard let value = self[name] else {
            throw ConfigurationError(description: "\(name) is not set: \(purpose)")
        }
        return value
    }

    public func integer(_ name: String, default value: Int, range: ClosedRange<Int>) throws(ConfigurationError) -> Int {
        try integer(name, range: range) ?? value
    }

    /// A whole-number setting in `range`; nil when it is not set.
    public func integer(_ name: String, range: ClosedRange<Int>) throws(ConfigurationError) -> Int? {
        guard let text = self[name] else { return nil }
        guard let number = Int(text), range.contains(number) else {
            throw ConfigurationError(
                description:
                    "\(name) is '\(text)': expected a whole number from \(range.lowerBound) to \(range.upperBound)")
        }
        return number
    }

    /// The database connection the `DB_*` settings describe.
    public func database() throws(ConfigurationError) -> ConnectionConfiguration {
        let database = try required("DB_DATABASE", "name the database that holds the job tables")
        let user = try required("DB_USERNAME", "name the database user Fanout connects as")
        let port = try integer("DB_PORT", default: 3306, range: 1...65535)
        // Several nodes (a Galera cluster): `db1,db2:3307,db3`, tried in order.
        let hostText = self["DB_HOST"] ?? "127.0.0.1"
        guard let hosts = ConnectionConfiguration.hostList(hostText, defaultPort: UInt32(port)) else {
            throw ConfigurationError(
                description: "DB_HOST is '\(hostText)': expected a host or a comma-separated list of "
                    + "host or host:port (db1,db2:3307,db3)")
        }
        var configuration = ConnectionConfiguration(
            host: hosts[0].host,
            port: hosts[0].port,
            socket: self["DB_SOCKET"],
            user: user,
            password: self["DB_PASSWORD"] ?? "",
            database: database
        )
        configuration.alternates = Array(hosts.dropFirst())
        return configuration
    }

    /// The SMTP server and sender the `MAIL_*` settings describe.
    public func email(connections: Int?) throws(ConfigurationError) -> EmailSettings {
        let host = try required("MAIL_HOST", "name the SMTP server to send through")
        let security: SMTPConfiguration.Security
        switch self["MAIL_ENCRYPTION"]?.lowercased() {
        case nil, "none": security = .none
        case "tls", "starttls": security = .startTLS
        case "ssl", "smtps": security = .implicitTLS
        case let other?:
            throw ConfigurationError(
                description: "MAIL_ENCRYPTION is '\(other)': expected tls (STARTTLS), ssl (implicit TLS) or null")
        }
        let defaultPort = security == .implicitTLS ? 465 : security == .startTLS ? 587 : 25
        let port = try integer("MAIL_PORT", default: defaultPort, range: 1...65535)
        let fromAddress = try required("MAIL_FROM_ADDRESS", "the sender address of every message")
        if case .failure(let problem) = EmailAddress.validate(fromAddress) {
            throw ConfigurationError(description: "MAIL_FROM_ADDRESS: \(problem)")
        }
        let timeout = try integer("FANOUT_SMTP_TIMEOUT", default: 60, range: 1...3600)
        let smtp = SMTPConfiguration(
            host: host,
            port: port,
            security: security,
            username: self["MAIL_USERNAME"],
            password: self["MAIL_PASSWORD"],
            tls: TLSOptions(verifyPeer: true, caFile: self["FANOUT_SMTP_CA_FILE"]),
            clientName: self["FANOUT_SMTP_HELO"] ?? "localhost",
            connectTimeoutMilliseconds: 10_000,
            timeoutMilliseconds: timeout * 1000
        )
        let fromEnvironment = try integer("FANOUT_SMTP_CONNECTIONS", default: 4, range: 1...64)
        let connections = connections ?? fromEnvironment
        var settings = EmailSettings(
            smtp: smtp,
            from: Mailbox(address: fromAddress, name: self["MAIL_FROM_NAME"]),
            templatesFolder: self["FANOUT_TEMPLATES"] ?? "./templates",
            connections: connections
        )
        settings.unsubscribe = try unsubscribe()
        settings.listID = self["FANOUT_LIST_ID"]
        settings.dkim = try dkim()
        settings.ratePerSecond = try number("MAIL_RATE_PER_SECOND", default: 10)
        settings.rateBurst = try number("MAIL_RATE_BURST")
        settings.perHour = try integer("MAIL_RATE_PER_HOUR", range: 1...100_000_000)
        settings.perDay = try integer("MAIL_RATE_PER_DAY", range: 1...100_000_000)
        return settings
    }

    /// A number setting, 0 or more.
    func number(_ name: String, default value: Double) throws(ConfigurationError) -> Double {
        try number(name) ?? value
    }

    /// A number setting, 0 or more; nil when it is not set.
    func number(_ name: String) throws(ConfigurationError) -> Double? {
        guard let text = self[name] else { return nil }
        guard let number = Double(text), number >= 0, number.isFinite else {
            throw ConfigurationError(description: "\(name) is '\(text)': expected a number, 0 or more")
        }
        return number
    }

    /// The DKIM key (`MAIL_DKIM_DOMAIN`, `MAIL_DKIM_SELECTOR`, `MAIL_DKIM_KEY_FILE`,
    /// `MAIL_DKIM_ALGORITHM`), checked now: a key that cannot sign stops the command before
    /// anything is sent.
    public func dkim() throws(ConfigurationError) -> DKIMKey? {
        guard let file = self["MAIL_DKIM_KEY_FILE"] else { return nil }
        let domain = try required("MAIL_DKIM_DOMAIN", "the domain DKIM signatures are made for (d=)")
        let selector = try required("MAIL_DKIM_SELECTOR", "the DNS selector of the DKIM key (s=)")
        let algorithmText = self["MAIL_DKIM_ALGORITHM"] ?? "rsa-sha256"
        guard let algorithm = DKIMAlgorithm(rawValue: algorithmText.lowercased()) else {
            throw ConfigurationError(
                description: "MAIL_DKIM_ALGORITHM is '\(algorithmText)': expected rsa-sha256 or ed25519-sha256")
        }
        guard let data = FileManager.default.contents(atPath: file) else {
            throw ConfigurationError(description: "MAIL_DKIM_KEY_FILE \(file) cannot be read")
        }
        do {
            return try DKIMKey(
                domain: domain, selector: selector, privateKeyPEM: String(decoding: data, as: UTF8.self),
                algorithm: algorithm)
        } catch {
            throw ConfigurationError(description: "MAIL_DKIM_KEY_FILE \(file): \(error)")
        }
    }

    /// Marketing mail's one-click unsubscribe: `FANOUT_UNSUBSCRIBE_URL` (with `{token}`),
    /// `FANOUT_UNSUBSCRIBE_SECRET` (the HMAC key, 16 characters or more), `FANOUT_UNSUBSCRIBE_MAILTO`.
    public func unsubscribe() throws(ConfigurationError) -> UnsubscribeSettings? {
        guard let url = self["FANOUT_UNSUBSCRIBE_URL"] else { return nil }
        guard url.contains("{token}"), url.hasPrefix("https://") || url.hasPrefix("http://") else {
            throw ConfigurationError(
                description: "FANOUT_UNSUBSCRIBE_URL is '\(url)': expected an http(s) URL with {token} in it, "
                    + "such as https://app.example.com/unsubscribe/{token}")
        }
        guard let secret = self["FANOUT_UNSUBSCRIBE_SECRET"], secret.count >= 16 else {
            throw ConfigurationError(
                description:
                    "FANOUT_UNSUBSCRIBE_SECRET must be set, 16 characters or more, with FANOUT_UNSUBSCRIBE_URL "
                    + "(the key that signs unsubscribe links; e.g. openssl rand -base64 32)")
        }
        return UnsubscribeSettings(urlTemplate: url, secret: secret, mailto: self["FANOUT_UNSUBSCRIBE_MAILTO"])
    }

    /// The wallet API settings: templates, TLS, timeouts and every `WALLET_*` variable.
    public func wallet(parallel: Int?, rate: Double?) throws(ConfigurationError) -> WalletSettings {
        let timeout = try integer("FANOUT_HTTP_TIMEOUT", default: 30, range: 1...3600)
        let fromEnvironment = try integer("FANOUT_HTTP_CONNECTIONS", default: 8, range: 1...256)
        var environment = values.filter { $0.key.hasPrefix("WALLET_") && !$0.value.isEmpty }
        // Settings with a documented default render it in templates when unset.
        for (name, value) in Self.walletDefaults where environment[name] == nil { environment[name] = value }
        var settings = WalletSettings(
            templatesFolder: self["FANOUT_TEMPLATES"] ?? "./templates",
            parallel: parallel ?? fromEnvironment,
            rate: rate,
            tls: TLSOptions(verifyPeer: true, caFile: self["FANOUT_HTTP_CA_FILE"], extraCAFile: self["WALLET_TLS_CA"]),
            connectTimeoutMilliseconds: 10_000,
            timeoutMilliseconds: timeout * 1000,
            followRedirects: ["1", "true", "yes"].contains(self["FANOUT_HTTP_FOLLOW_REDIRECTS"]?.lowercased() ?? ""),
            environment: environment
        )
        settings.credentials = WalletCredentialSettings(
            googleKeyFile: self["WALLET_GOOGLE_KEY_FILE"], apnsCertificate: self["WALLET_APNS_CERT"],
            apnsKey: self["WALLET_APNS_KEY"], apnsKeyPassword: self["WALLET_APNS_KEY_PASSWORD"],
            apnsP12: self["WALLET_APNS_P12"], apnsTopic: self["WALLET_APNS_TOPIC"])
        settings.credentials.googleRate = try number("WALLET_GOOGLE_RATE", default: 20)
        return settings
    }

    /// Wallet settings with a documented default (contract, "Wallet platforms").
    static let walletDefaults = [
        "WALLET_GOOGLE_API_BASE": "https://walletobjects.googleapis.com/walletobjects/v1",
        "WALLET_APNS_BASE": "https://api.push.apple.com",
    ]

    /// Where a setting's value comes from: `environment`, the `.env` file's path, or nil (unset).
    public func source(of name: String) -> String? {
        if environmentNames.contains(name) { return "environment" }
        return values[name] == nil ? nil : envFile
    }

    /// Every `WALLET_*` name that is set, sorted.
    public var walletNames: [String] { values.keys.filter { $0.hasPrefix("WALLET_") }.sorted() }

    /// `FANOUT_LOG_FILE`, when set.
    public var logFile: String? { self["FANOUT_LOG_FILE"] }
}

/// A problem with the settings (exit 78 at the command line).
public struct ConfigurationError: Error, Sendable, CustomStringConvertible {
    public var description: String
    public init(description: String) { self.description = description }
}
