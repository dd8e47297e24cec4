import CMariaDB
#if canImport(Glibc)
import Glibc
#endif

private let libraryInitialised: Bool = {
    // mysql_library_init must run once before any thread uses the library.
    cmariadb_library_init() == 0
}()

/// A connection to a MariaDB server, used by one thread at a time.
///
/// ```swift
/// let db = try Connection(ConnectionConfiguration(user: "app", socket: "/run/mysqld.sock"))
/// let rows = try db.query("SELECT id FROM t WHERE status = ?", ["pending"])
/// ```
///
/// The session runs in UTC (`time_zone = '+00:00'`) with `utf8mb4`. A lost connection is reported
/// as an error with code `.connectionLost`; the library never reconnects silently.
/// See https://mariadb.com/kb/en/mariadb-connectorc-api-functions/
public final class Connection {
    private var handle: UnsafeMutablePointer<MYSQL>?
    private let statementCache = StatementCache()
    /// Session settings already run on this connection (`setUpSession`).
    private var sessionSetUp: Set<String> = []

    /// Opens a connection: to `host:port`, or else to the first of `alternates` that answers
    /// and is ready.
    /// - Throws: `MariaDBError` with code `.connect` when no server can be reached or all refuse.
    public init(_ configuration: ConnectionConfiguration) throws(MariaDBError) {
        let socket = configuration.socket.flatMap { $0.isEmpty ? nil : $0 }
        let endpoints = socket == nil ? [(configuration.host, configuration.port)] + configuration.alternates : []
        guard endpoints.count > 1 else {
            handle = try Self.open(configuration, host: configuration.host, port: configuration.port, socket: socket)
            return
        }
        var failures: [String] = []
        var lastError: MariaDBError?
        for (host, port) in endpoints {
            do {
                let mysql = try Self.open(configuration, host: host, port: port, socket: nil)
                if let state = Self.notReady(mysql) {
                    mysql_close(mysql)
                    failures.append("\(host):\(port) is not ready (\(state))")
                    continue
                }
                handle = mysql
                return
            } catch {
                failures.append("\(host):\(port): \(error.message)")
                lastError = error
            }
        }
        throw MariaDBError(
            code: .connect, number: lastError?.number ?? 0,
            message: "no server answered and was ready: " + failures.joined(separator: "; "),
            function: "mysql_real_connect")
    }

    private static func open(_ configuration: ConnectionConfiguration, host: String, port: UInt32, socket: String?)
        throws(MariaDBError) -> UnsafeMutablePointer<MYSQL>
    {
        guard libraryInitialised, let mysql = mysql_init(nil) else {
            throw MariaDBError(code: .client, message: "could not initialise libmariadb", function: "mysql_init")
        }
        cmariadb_set_uint_option(mysql, MYSQL_OPT_CONNECT_TIMEOUT, configuration.connectTimeout)
        cmariadb_set_uint_option(mysql, MYSQL_OPT_READ_TIMEOUT, configuration.readTimeout)
        cmariadb_set_uint_option(mysql, MYSQL_OPT_WRITE_TIMEOUT, configuration.writeTimeout)
        cmariadb_set_bool_option(mysql, MYSQL_OPT_RECONNECT, 0)
        cmariadb_set_string_option(mysql, MYSQL_SET_CHARSET_NAME, "utf8mb4")
        if configuration.utcSession {
            cmariadb_set_string_option(mysql, MYSQL_INIT_COMMAND, "SET time_zone = '+00:00'")
        }
        let connected = mysql_real_connect(
            mysql,
            socket == nil ? host : nil,
            configuration.user,
            configuration.password,
            configuration.database,
            socket == nil ? port : 0,
            socket,
            UInt(CLIENT_MULTI_STATEMENTS) | UInt(CLIENT_FOUND_ROWS)
        )
        if connected == nil {
            var error = MariaDBError.from(connection: mysql, function: "mysql_real_connect")
            // Access denied, unknown database and the like are server answers, but for a caller they
            // all mean "could not connect"; the number still tells them apart.
            error.code = .connect
            mysql_close(mysql)
            throw error
        }
        return mysql
    }

    /// A Galera node that answers but cannot take queries (joining, cut off from the cluster's
    /// primary component, or told to reject them) says so in `wsrep_ready` and
    /// `wsrep_reject_queries` (both readable while it refuses other queries): what it says then,
    /// else nil (ready, or a server without them).
    private static func notReady(_ mysql: UnsafeMutablePointer<MYSQL>) -> String? {
        let status = "SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME"
        let variable = "SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_VARIABLES WHERE VARIABLE_NAME"
        let query = """
            SELECT (\(status) = 'WSREP_READY'), (\(variable) = 'WSREP_REJECT_QUERIES'), (\(variable) = 'WSREP_ON')
            """
        guard mysql_real_query(mysql, query, UInt(query.utf8.count)) == 0,
            let result = mysql_store_result(mysql)
        else { return "unknown: \(String(cString: mysql_error(mysql)))" }
        defer { mysql_free_result(result) }
        // A plain server (wsrep_on OFF) reports wsrep_ready OFF: it is ready.
        guard let row = mysql_fetch_row(result), let on = row[2], String(cString: on) == "ON" else { return nil }
        let ready = row[0].map { String(cString: $0) }
        let rejecting = row[1].map { String(cString: $0) }
        if let ready, ready != "ON" { return "wsrep_ready \(ready)" }
        if let rejecting, rejecting != "NONE" { return "wsrep_reject_queries \(rejecting)" }
        return nil
    }

    deinit { close() }

    /// Closes the connection; later calls throw `.closed`. Safe to call twice.
    public func close() {
        statementCache.closeAll()
        if let handle { mysql_close(handle) }
        handle = nil
    }

    var mysql: UnsafeMutablePointer<MYSQL> {
        get throws(MariaDBError) {
            guard let handle else {
                throw MariaDBError(code: .closed, message: "the connection is closed", function: "Connection")
            }
            return handle
        }
    }

    /// The server's version string, e.g. `10.11.6-MariaDB-0+deb12u1`.
    public var serverVersion: String {
        guard let handle, let version = mysql_get_server_info(handle) else { return "" }
        return String(cString: version)
    }

    /// Runs one or more statements without parameters (text protocol), discarding any result.
    /// - Returns: the rows affected by the last statement.
    @discardableResult
    public func execute(_ sql: String) throws(MariaDBError) -> UInt64 {
        let mysql = try self.mysql
        let status = sql.withCString { mysql_real_query(mysql, $0, UInt(strlen($0))) }
        if status != 0 { throw MariaDBError.from(connection: mysql, function: "mysql_real_query") }
        var affected: UInt64 = 0
        repeat {
            if let result = mysql_store_result(mysql) {
                mysql_free_result(result)
            } else if mysql_field_count(mysql) != 0 {
                throw MariaDBError.from(connection: mysql, function: "mysql_store_result")
            } else {
                affected = mysql_affected_rows(mysql)
            }
            let next = mysql_next_result(mysql)
            if next > 0 { throw MariaDBError.from(connection: mysql, function: "mysql_next_result") }
            if next < 0 { break }
        } while true
        return affected
    }

    /// Runs a statement that sets up the session (`SET SESSION …`) once in this connection's life:
    /// later calls with the same text cost nothing. For settings wanted only once a connection
    /// does real work (an init command would cost every connection a statement).
    public func setUpSession(_ sql: String) throws(MariaDBError) {
        if sessionSetUp.contains(sql) { return }
        try execute(sql)
        sessionSetUp.insert(sql)
    }

    /// Prepares a statement. Statements are cached per connection by their SQL text, so preparing
    /// the same text again costs no round trip.
    public func prepare(_ sql: String) throws(MariaDBError) -> Statement {
        if let cached = statementCache.statement(for: sql) { return cached }
        let statement = try Statement(connection: self, sql: sql)
        statementCache.store(statement, for: sql)
        return statement
    }

    /// Runs a statement with parameters and returns every row.
    public func query(_ sql: String, _ parameters: [any SQLEncodable] = []) throws(MariaDBError) -> [Row] {
        try prepare(sql).query(parameters)
    }

    /// Runs a statement with parameters and returns the first row, if any.
    public func queryFirst(_ sql: String, _ parameters: [any SQLEncodable] = []) throws(MariaDBError) -> Row? {
        try prepare(sql).query(parameters).first
    }

    /// Runs a statement with parameters that returns no rows.
    @discardableResult
    public func execute(_ sql: String, _ parameters: [any SQLEncodable]) throws(MariaDBError) -> ExecuteResult {
        try prepare(sql).execute(parameters)
    }

    /// Runs `body` in a transaction: committed when it returns, rolled back when it throws.
    public func transaction<T>(_ body: () throws -> T) throws -> T {
        try execute("START TRANSACTION")
        do {
            let value = try body()
            try execute("COMMIT")
            return value
        } catch {
            _ = try? execute("ROLLBACK")
            throw error
        }
    }
}

@available(*, unavailable)
extension Connection: Sendable {}

/// What a statement without a result did.
public struct ExecuteResult: Sendable {
    public var affectedRows: UInt64
    public var lastInsertID: UInt64
}

/// Prepared statements of one connection, by SQL text.
final class StatementCache {
    private var statements: [String: Statement] = [:]

    func statement(for sql: String) -> Statement? { statements[sql] }

    func store(_ statement: Statement, for sql: String) {
        if statements.count >= 256 { closeAll() }
        statements[sql] = statement
    }

    func closeAll() {
        for statement in statements.values { statement.close() }
        statements.removeAll()
    }
}

@available(*, unavailable)
extension StatementCache: Sendable {}
