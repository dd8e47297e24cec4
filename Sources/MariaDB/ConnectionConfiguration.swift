/// Where and how to connect to a MariaDB server.
///
/// With `socket` set, libmariadb connects through that unix socket; otherwise over TCP to
/// `host:port`. (libmariadb treats the host `localhost` as "the default socket", so a socket path
/// must be given explicitly to use one.)
public struct ConnectionConfiguration: Sendable {
    public var host: String
    public var port: UInt32
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
        return "\(host):\(port)"
    }
}
