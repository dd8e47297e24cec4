import FanoutStore
import Foundation
import Logging
import MariaDB
import Testing
import TestSupport

@Suite(.enabled(if: TestEnvironment.hasDatabase))
struct MigratorTests {
    let logger = Logger(label: "test")

    @Test func embeddedMigrationsMatchTheFilesInSQL() throws {
        let folder = TestEnvironment.repositoryRoot.appendingPathComponent("sql/migrations")
        let files = try FileManager.default.contentsOfDirectory(atPath: folder.path).filter { $0.hasSuffix(".sql") }
            .sorted()
        #expect(files == Migration.all.map(\.file), "run scripts/embed-sql after editing sql/migrations")
        for migration in Migration.all {
            let text = try String(contentsOf: folder.appendingPathComponent(migration.file), encoding: .utf8)
            #expect(
                text.trimmingCharacters(in: .newlines) == migration.sql,
                "\(migration.file) differs from its embedded copy: run scripts/embed-sql")
        }
    }

    @Test func secondRunChangesNothing() throws {
        try withTestDatabase { _, db in
            let first = try Migrator(connection: db, logger: logger).migrate()
            #expect(first.map(\.version) == Migration.all.map(\.version))
            let before = try schema(db)
            let second = try Migrator(connection: db, logger: logger).migrate()
            #expect(second.isEmpty)
            #expect(try schema(db) == before)
            #expect(try Migrator(connection: db, logger: logger).pending().isEmpty)
        }
    }

    @Test func freshSchemaHasWhatAClaimNeeds() throws {
        try withTestDatabase { _, db in
            try Migrator(connection: db, logger: logger).migrate()
            for (table, column) in [
                ("bulk_email_job_items", "bulk_email_job_id"), ("bulk_wallet_api_job_items", "bulk_wallet_api_job_id"),
            ] {
                let index = try db.query(
                    "SELECT column_name AS c FROM information_schema.statistics "
                        + "WHERE table_schema = DATABASE() AND table_name = ? AND index_name = ? ORDER BY seq_in_index",
                    [table, "\(table)_job_status_id"]
                ).map { try $0.decode("c", as: String.self) }
                #expect(index == [column, "status", "id"])
            }
            let tables = try db.query(
                "SELECT table_name AS t FROM information_schema.tables WHERE table_schema = DATABASE() ORDER BY 1"
            )
            .map { try $0.decode("t", as: String.self) }
            #expect(
                Set(tables).isSuperset(of: [
                    "bulk_email_jobs", "bulk_email_job_items", "bulk_wallet_api_jobs", "bulk_wallet_api_job_items",
                    "fanout_leases", "fanout_ticks", "fanout_migrations", "fanout_workers", "fanout_control",
                    "fanout_outages",
                ]))
            // The lease row's fence counter, which the fenced writes increment (migration 007).
            let fence = try db.query(
                "SELECT column_name AS c FROM information_schema.columns "
                    + "WHERE table_schema = DATABASE() AND table_name = 'fanout_leases' AND column_name = 'fence'")
            #expect(fence.count == 1)
        }
    }

    @Test func existingLaravelTablesKeepEveryRowAndGainOnlyWhatIsMissing() throws {
        try withTestDatabase { _, db in
            // Tables as a host application's own migration might create them: the contract's
            // minimum columns, its own extra column, its own index name, and rows already there.
            try db.execute(
                """
                CREATE TABLE bulk_email_jobs (
                  id BIGINT UNSIGNED AUTO_INCREMENT PRIMARY KEY, company_id BIGINT UNSIGNED NOT NULL,
                  template VARCHAR(191) NOT NULL, status VARCHAR(20) NOT NULL DEFAULT 'pending', reason TEXT NULL,
                  total_items INT UNSIGNED NOT NULL DEFAULT 0, processed_items INT UNSIGNED NOT NULL DEFAULT 0,
                  failed_items INT UNSIGNED NOT NULL DEFAULT 0, last_processed_at TIMESTAMP NULL,
                  started_at TIMESTAMP NULL, completed_at TIMESTAMP NULL,
                  created_at TIMESTAMP NULL, updated_at TIMESTAMP NULL,
                  created_by BIGINT UNSIGNED NULL
                ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
                CREATE TABLE bulk_email_job_items (
                  id BIGINT UNSIGNED AUTO_INCREMENT PRIMARY KEY, bulk_email_job_id BIGINT UNSIGNED NOT NULL,
                  email VARCHAR(320) NOT NULL, name VARCHAR(255) NULL, data JSON NULL,
                  status VARCHAR(20) NOT NULL DEFAULT 'pending', reason TEXT NULL,
                  attempts INT UNSIGNED NOT NULL DEFAULT 0,
                  processed_at TIMESTAMP NULL, created_at TIMESTAMP NULL, updated_at TIMESTAMP NULL,
                  KEY items_job_fk (bulk_email_job_id)
                ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
                CREATE TABLE bulk_wallet_api_jobs (
                  id BIGINT UNSIGNED AUTO_INCREMENT PRIMARY KEY, company_id BIGINT UNSIGNED NOT NULL,
                  template VARCHAR(191) NOT NULL, status VARCHAR(20) NOT NULL DEFAULT 'pending', reason TEXT NULL,
                  total_items INT UNSIGNED NOT NULL DEFAULT 0, processed_items INT UNSIGNED NOT NULL DEFAULT 0,
                  failed_items INT UNSIGNED NOT NULL DEFAULT 0, last_processed_at TIMESTAMP NULL,
                  started_at TIMESTAMP NULL, completed_at TIMESTAMP NULL,
                  created_at TIMESTAMP NULL, updated_at TIMESTAMP NULL
                ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
                CREATE TABLE bulk_wallet_api_job_items (
                  id BIGINT UNSIGNED AUTO_INCREMENT PRIMARY KEY, bulk_wallet_api_job_id BIGINT UNSIGNED NOT NULL,
                  card_id BIGINT UNSIGNED NULL, platform VARCHAR(20) NULL, data JSON NULL,
                  status VARCHAR(20) NOT NULL DEFAULT 'pending', reason TEXT NULL,
                  attempts INT UNSIGNED NOT NULL DEFAULT 0,
                  http_status SMALLINT NULL, processed_at TIMESTAMP NULL,
                  created_at TIMESTAMP NULL, updated_at TIMESTAMP NULL
                ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
                INSERT INTO bulk_email_jobs (company_id, template, status, created_by)
                  VALUES (7, 'welcome', 'pending', 99);
                INSERT INTO bulk_email_job_items (bulk_email_job_id, email, name, data, status, reason, attempts)
                  VALUES (1, 'a@example.test', 'Zoë 🎉', '{"k": "v"}', 'failed', 'old reason', 3),
                         (1, 'b@example.test', NULL, NULL, 'pending', NULL, 0);
                INSERT INTO bulk_wallet_api_jobs (company_id, template) VALUES (8, 'cards');
                INSERT INTO bulk_wallet_api_job_items (bulk_wallet_api_job_id, card_id, platform, http_status, status)
                  VALUES (1, 42, 'google', 404, 'failed');
                """)
            let rowsBefore = try dump(db)
            let columnsBefore = try columns(db)

            try Migrator(connection: db, logger: logger).migrate()

            #expect(try dump(db) == rowsBefore)
            let columnsAfter = try columns(db)
            for (table, before) in columnsBefore {
                let after = try #require(columnsAfter[table])
                #expect(Set(before).isSubset(of: Set(after)), "\(table) lost a column")
                // The host's columns keep their definitions and their order.
                #expect(Array(after.prefix(before.count)) == before, "\(table) changed a host column")
            }
            #expect(columnsAfter["bulk_email_jobs"]?.contains { $0.hasPrefix("created_by ") } == true)
            #expect(columnsAfter["bulk_email_job_items"]?.contains { $0.hasPrefix("next_attempt_at ") } == true)
            #expect(columnsAfter["bulk_wallet_api_job_items"]?.contains { $0.hasPrefix("claimed_by ") } == true)
            #expect(try Migrator(connection: db, logger: logger).migrate().isEmpty)
            #expect(try dump(db) == rowsBefore)
        }
    }

    /// Every column and index of every table, as the server describes them.
    func schema(_ db: Connection) throws -> [String] {
        let tables = try db.query(
            "SELECT table_name AS t FROM information_schema.tables WHERE table_schema = DATABASE() ORDER BY 1")
        return try tables.map { row in
            let table = try row.decode("t", as: String.self)
            let create = try #require(try db.queryFirst("SHOW CREATE TABLE `\(table)`"))
            return try create.decode("Create Table", as: String.self)
                .replacingOccurrences(of: #"AUTO_INCREMENT=\d+ "#, with: "", options: .regularExpression)
        }
    }

    func columns(_ db: Connection) throws -> [String: [String]] {
        var result: [String: [String]] = [:]
        for table in ["bulk_email_jobs", "bulk_email_job_items", "bulk_wallet_api_jobs", "bulk_wallet_api_job_items"] {
            result[table] = try db.query(
                "SELECT column_name AS c, column_type AS t, is_nullable AS n, column_default AS d "
                    + "FROM information_schema.columns WHERE table_schema = DATABASE() "
                    + "AND table_name = ? ORDER BY ordinal_position",
                [table]
            ).map { row in
                let name = try row.decode("c", as: String.self)
                let type = try row.decode("t", as: String.self)
                let nullable = try row.decode("n", as: String.self)
                let columnDefault = (try? row.decode("d", as: String.self)) ?? "-"
                return "\(name) \(type) \(nullable) \(columnDefault)"
            }
        }
        return result
    }

    func dump(_ db: Connection) throws -> [String] {
        var lines: [String] = []
        for table in ["bulk_email_jobs", "bulk_email_job_items", "bulk_wallet_api_jobs", "bulk_wallet_api_job_items"] {
            let original = try db.query(
                "SELECT column_name AS c FROM information_schema.columns "
                    + "WHERE table_schema = DATABASE() AND table_name = ? ORDER BY ordinal_position",
                [table]
            )
            .map { try $0.decode("c", as: String.self) }
            .filter {
                ![
                    "next_attempt_at", "claimed_by", "claimed_at", "in_doubt", "response_code", "handed_through",
                    "unregistered_at", "mail_type",
                ].contains($0)
            }
            for row in try db.query(
                "SELECT \(original.map { "`\($0)`" }.joined(separator: ", ")) FROM `\(table)` ORDER BY id")
            {
                lines.append("\(table): " + row.values.map { "\($0)" }.joined(separator: " | "))
            }
        }
        return lines
    }
}
