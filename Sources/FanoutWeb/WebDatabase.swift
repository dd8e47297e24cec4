import Dispatch
import MariaDB
import Synchronization

/// The database for request handlers: blocking libmariadb calls run on a dispatch thread, never on
/// the server's event loop, and connections are kept for the next request.
final class WebDatabase: Sendable {
    private let configuration: ConnectionConfiguration
    private let idle = Mutex<[IdleConnection]>([])
    /// Idle connections kept at most (the page's few concurrent requests).
    private static let kept = 4

    init(configuration: ConnectionConfiguration) {
        self.configuration = configuration
    }

    /// Runs `body` with a connection on a thread of its own.
    func run<T: Sendable>(_ body: @escaping @Sendable (Connection) throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            DispatchQueue.global().async {
                continuation.resume(with: Result { try self.withConnection(body) })
            }
        }
    }

    private func withConnection<T>(_ body: (Connection) throws -> T) throws -> T {
        let connection = try idle.withLock { $0.popLast() }?.connection ?? Connection(configuration)
        do {
            let result = try body(connection)
            release(connection)
            return result
        } catch let error as MariaDBError where error.isUnavailable {
            // A connection the server dropped is not handed to the next request.
            connection.close()
            throw error
        } catch {
            release(connection)
            throw error
        }
    }

    private func release(_ connection: Connection) {
        let idleConnection = IdleConnection(connection: connection)
        let kept = idle.withLock { connections in
            guard connections.count < Self.kept else { return false }
            connections.append(idleConnection)
            return true
        }
        if !kept { connection.close() }
    }
}

/// A connection no request uses, waiting in the pool: only one thread holds it at a time (the
/// pool's lock hands it over), which is all a libmariadb connection asks.
private final class IdleConnection: @unchecked Sendable {
    let connection: Connection
    init(connection: Connection) { self.connection = connection }
}
