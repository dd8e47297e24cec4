import MariaDB
#if canImport(Glibc)
import Glibc
#endif

/// Settings with Laravel's names, read from the process environment.
///
/// Secrets (`DB_PASSWORD`, `MAIL_PASSWORD`) are only ever read here and handed to the libraries;
/// no description of `Settings` includes them.
struct Settings {
    private let values: [String: String]

    init(environment: [String: String]) {
        values = environment
    }

    static func fromProcess() -> Settings {
        var values: [String: String] = [:]
        var pointer = environ
        while let entry = pointer.pointee {
            let text = String(cString: entry)
            if let equals = text.firstIndex(of: "=") {
                values[String(text[..<equals])] = String(text[text.index(after: equals)...])
            }
            pointer += 1
        }
        return Settings(environment: values)
    }

    subscript(name: String) -> String? {
        guard let value = values[name], !value.isEmpty else { return nil }
        return value
    }

    func required(_ name: String, _ purpose: String) throws(ConfigurationError) -> String {
        guard let value = self[name] else {
            throw ConfigurationError(description: "\(name) is not set: \(purpose)")
        }
        return value
    }

    /// The database connection the `DB_*` settings describe.
    func database() throws(ConfigurationError) -> ConnectionConfiguration {
        let database = try required("DB_DATABASE", "name the database that holds the job tables")
        let user = try required("DB_USERNAME", "name the database user Fanout connects as")
        var port: UInt32 = 3306
        if let text = self["DB_PORT"] {
            guard let value = UInt32(text), value > 0, value < 65536 else {
                throw ConfigurationError(description: "DB_PORT is '\(text)': expected a port number such as 3306")
            }
            port = value
        }
        return ConnectionConfiguration(
            host: self["DB_HOST"] ?? "127.0.0.1",
            port: port,
            socket: self["DB_SOCKET"],
            user: user,
            password: values["DB_PASSWORD"] ?? "",
            database: database
        )
    }
}
