import CMariaDB

/// An error from libmariadb or the server, with the server's error number, SQLSTATE and message.
///
/// The description names the failing operation and the server's words; it never contains the
/// values bound to a statement.
public struct MariaDBError: Error, CustomStringConvertible, Sendable {
    /// What kind of failure this is, stable across versions.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        fileprivate let name: String
        public var description: String { name }

        public static let connect = Code(name: "connect")
        public static let connectionLost = Code(name: "connectionLost")
        public static let server = Code(name: "server")
        public static let client = Code(name: "client")
        public static let typeMismatch = Code(name: "typeMismatch")
        public static let parameterCount = Code(name: "parameterCount")
        public static let closed = Code(name: "closed")
    }

    public var code: Code
    /// The server's (or client library's, 2000–2999) error number; 0 when the error is Fanout's own.
    public var number: UInt32
    /// The five-character SQLSTATE, e.g. `23000`; `HY000` when the server gave none.
    public var sqlState: String
    /// The server's message.
    public var message: String
    /// The libmariadb function that failed.
    public var function: String

    public init(code: Code, number: UInt32 = 0, sqlState: String = "HY000", message: String, function: String) {
        self.code = code
        self.number = number
        self.sqlState = sqlState
        self.message = message
        self.function = function
    }

    /// Client error numbers that mean the connection to the server is gone.
    public static let connectionLostNumbers: Set<UInt32> = [
        UInt32(CR_SERVER_GONE_ERROR), UInt32(CR_SERVER_LOST), UInt32(CR_CONNECTION_ERROR),
        UInt32(CR_CONN_HOST_ERROR), 4031, // ER_CLIENT_INTERACTION_TIMEOUT
        1927, // ER_CONNECTION_KILLED
    ]

    /// A conflict that goes away when the transaction is tried again: deadlock or Galera
    /// certification failure (1213), lock wait timeout (1205), a Galera node not ready (1047).
    public var isConflict: Bool {
        number == 1213 || number == 1205 || number == 1047
    }

    /// Whether this error means the server cannot be used now (lost or refused connection).
    public var isUnavailable: Bool {
        code == .connect || code == .connectionLost
    }

    /// Duplicate key (1062).
    public var isDuplicateKey: Bool { number == 1062 }

    public var description: String {
        if number == 0 {
            return "MariaDB: \(message) (\(function))"
        }
        return "MariaDB error \(number) (\(sqlState)): \(message) (\(function))"
    }
}

extension MariaDBError {
    static func from(connection mysql: UnsafeMutablePointer<MYSQL>, function: String) -> MariaDBError {
        let number = mysql_errno(mysql)
        return MariaDBError(
            code: classify(number),
            number: number,
            sqlState: String(cString: mysql_sqlstate(mysql)),
            message: String(cString: mysql_error(mysql)),
            function: function
        )
    }

    static func from(statement stmt: UnsafeMutablePointer<MYSQL_STMT>, function: String) -> MariaDBError {
        let number = mysql_stmt_errno(stmt)
        return MariaDBError(
            code: classify(number),
            number: number,
            sqlState: String(cString: mysql_stmt_sqlstate(stmt)),
            message: String(cString: mysql_stmt_error(stmt)),
            function: function
        )
    }

    private static func classify(_ number: UInt32) -> Code {
        if connectionLostNumbers.contains(number) { return .connectionLost }
        if number >= 2000 && number < 3000 { return .client }
        return .server
    }
}
