import Logging
import MariaDB

/// Applies the migrations a database lacks, in order, and records each in `fanout_migrations`.
///
/// Every migration is written to be safe on tables a host application created itself
/// (`IF NOT EXISTS` throughout): it adds what is missing and never drops or rewrites data, so a
/// run that died half-way can simply run again.
public struct Migrator {
    private let connection: Connection
    private let migrations: [Migration]
    private let logger: Logger

    public init(connection: Connection, migrations: [Migration] = Migration.all, logger: Logger) {
        self.connection = connection
        self.migrations = migrations.sorted { $0.version < $1.version }
        self.logger = logger
    }

    /// The versions already applied to this database.
    public func appliedVersions() throws(MariaDBError) -> Set<Int> {
        try connection.execute(SQL.createMigrationsTable)
        let rows = try connection.query(SQL.appliedMigrations)
        var versions = Set<Int>()
        for row in rows { versions.insert(try row.decode("version", as: Int.self)) }
        return versions
    }

    /// The migrations this database has not had yet.
    public func pending() throws(MariaDBError) -> [Migration] {
        let applied = try appliedVersions()
        return migrations.filter { !applied.contains($0.version) }
    }

    /// Applies every pending migration; returns those it applied (none on an up-to-date database).
    @discardableResult
    public func migrate() throws(MariaDBError) -> [Migration] {
        let pending = try pending()
        for migration in pending {
            logger.info("applying migration", metadata: ["migration.file": "\(migration.file)"])
            try connection.execute(migration.sql)
            try connection.execute(SQL.recordMigration, [migration.version, migration.name])
        }
        return pending
    }
}

extension SQL {
    static let createMigrationsTable = """
        CREATE TABLE IF NOT EXISTS fanout_migrations (
          version INT UNSIGNED NOT NULL PRIMARY KEY,
          name VARCHAR(191) NOT NULL,
          applied_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)
        ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci
        """
    static let appliedMigrations = "SELECT version FROM fanout_migrations ORDER BY version"
    static let recordMigration = "INSERT IGNORE INTO fanout_migrations (version, name) VALUES (?, ?)"
}
