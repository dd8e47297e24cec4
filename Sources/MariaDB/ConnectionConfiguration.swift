/// Where and how to connect to a MariaDB server.
///
/// With `socket` set, libmariadb connects through that unix socket; otherwise over TCP to
/// `host:port`. (libmariadb treats the host `localhost` as "the default socket", so a socket path
/// must be given explicitly to use one.)
public struct ConnectionConfiguration: Sendable {
    public var host: String
    public var port: UInt32
    /// Further servers to try, in order, when `host:port` does not answer or is not ready (the
    /// other nodes of a Galera cluster). With any given, a server that answers must also report
    /// `wsrep_ready` ON where it has that status (one statement at connect); a plain server passes.
    public var alternates: [(host: String, port: UInt32)] = []
    public var socket: String?
    public var user: String
    public var password: String
    public var database: String?
    /// Seconds to wait for the connection to be established.
    public var connectTimeout: UInt32
    /// Seconds to wait for each read from the server.
    public var readTimeout: UInt32
    /// Seconds to wait for each write to the server.
    public var writeTimeout: UInt32
    /// Run `SET time_zone = '+00:00'` on connect, so TIMESTAMP values read and bound as `Date`
    /// are UTC. A caller that exchanges times as Unix seconds can save that statement.
    public var utcSession: Bool

    public init(
        host: String = "127.0.0.1",
        port: UInt32 = 3306,
        socket: String? = nil,
        user: String,
        password: String = "",
        database: String? = nil,
        connectTimeout: UInt32 = 5,
        readTimeout: UInt32 = 60,
        writeTimeout: UInt32 = 60,
        utcSession: Bool = true
    ) {
        self.host = host
        self.port = port
        self.socket = socket
        self.user = user
        self.password = password
        self.database = database
        self.connectTimeout = connectTimeout
        self.readTimeout = readTimeout
        self.writeTimeout = writeTimeout
        self.utcSession = utcSession
    }

    /// Where this connects to, for messages: never includes the password.
    public var endpointDescription: String {
        if let socket, !socket.isEmpty { return "unix socket \(socket)" }
        return ([(host, port)] + alternates).map { "\($0.host):\($0.port)" }.joined(separator: ", ")
    }

    /// Reads a host list as `DB_HOST` gives it: `db1,db2:3307,[::1]:3308`; a host without a port
    /// gets `defaultPort`. Nil when the list is empty or a port is not a number from 1 to 65535.
    public static func hostList(_ text: String, defaultPort: UInt32) -> [(host: String, port: UInt32)]? {
        var hosts: [(host: String, port: UInt32)] = []
        for part in text.split(separator: ",") {
            var entry = part
            while entry.first == " " { entry = entry.dropFirst() }
            while entry.last == " " { entry = entry.dropLast() }
            if entry.isEmpty { return nil }
            var name = entry
            var port = defaultPort
            if entry.hasPrefix("["), let close = entry.firstIndex(of: "]") {
                name = entry[entry.index(after: entry.startIndex)..<close]
                let rest = entry[entry.index(after: close)...]
                if !rest.isEmpty {
                    guard rest.hasPrefix(":"), let number = UInt32(rest.dropFirst()) else { return nil }
                    port = number
                }
            } else if entry.filter({ $0 == ":" }).count == 1, let colon = entry.firstIndex(of: ":") {
                name = entry[..<colon]
                guard let number = UInt32(entry[entry.index(after: colon)...]) else { return nil }
                port = number
            }
            guard !name.isEmpty, (1...65535).contains(port) else { return nil }
            hosts.append((String(name), port))
        }
        return hosts.isEmpty ? nil : hosts
    }
}
