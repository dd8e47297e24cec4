import FanoutCore
import MariaDB

/// `fanout_access_tokens` over a connection of its own, opened on first use (only jobs whose
/// templates use `# @auth google` need it).
public final class MariaDBTokenCache: AccessTokenCache {
    private let configuration: ConnectionConfiguration
    private var connection: Connection?

    public init(configuration: ConnectionConfiguration) {
        self.configuration = configuration
    }

    deinit { connection?.close() }

    private func open() throws -> Connection {
        if let connection { return connection }
        let opened = try Connection(configuration)
        connection = opened
        return opened
    }

    public func token(for credential: String) throws -> (token: String, expiresAt: Double)? {
        guard let row = try open().queryFirst(TokenSQL.read, [credential]) else { return nil }
        return (try row.decode("access_token"), try row.decode("expires_at"))
    }

    public func store(_ token: String, expiresAt: Double, for credential: String) throws {
        try open().execute(TokenSQL.write, [credential, token, expiresAt])
    }
}

@available(*, unavailable)
extension MariaDBTokenCache: Sendable {}

enum TokenSQL {
    static let read = "SELECT access_token, expires_at FROM fanout_access_tokens WHERE credential = ?"
    static let write = """
        INSERT INTO fanout_access_tokens (credential, access_token, expires_at) VALUES (?, ?, ?)
        ON DUPLICATE KEY UPDATE access_token = VALUES(access_token), expires_at = VALUES(expires_at)
        """
}
