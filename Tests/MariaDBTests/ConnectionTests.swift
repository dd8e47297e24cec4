import Foundation
import MariaDB
import Testing
import TestSupport

@Suite(.enabled(if: TestEnvironment.hasDatabase))
struct ConnectionTests {
    @Test func everyBoundTypeRoundTrips() throws {
        try withTestDatabase { _, db in
            try db.execute(
                """
                CREATE TABLE t (
                  id BIGINT UNSIGNED AUTO_INCREMENT PRIMARY KEY,
                  i BIGINT NULL, u BIGINT UNSIGNED NULL, d DOUBLE NULL, s VARCHAR(255) NULL,
                  b TINYINT(1) NULL, dt DATETIME(6) NULL, ts TIMESTAMP(6) NULL, bin BLOB NULL,
                  j JSON NULL, big LONGTEXT NULL
                ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4
                """)
            let date = Date(timeIntervalSince1970: 1_790_000_000.123456)
            let bytes = Data([0, 1, 2, 0xFF, 0, 0x7F])
            let emoji = "Grüße 🎉 𝄞 עברית"
            let json = #"{"name": "Zoë 🎉", "n": [1, 2.5, null], "q": "a\"b"}"#
            let big = String(repeating: "0123456789abcdé", count: 70_000)
            let insert = try db.execute(
                "INSERT INTO t (i, u, d, s, b, dt, ts, bin, j, big) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [Int64.min, UInt64.max, 3.25, emoji, true, date, date, bytes, json, big]
            )
            #expect(insert.affectedRows == 1)
            #expect(insert.lastInsertID == 1)
            let nulls = try db.execute(
                "INSERT INTO t (i, u, d, s, b, dt, ts, bin, j, big) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                Array(repeating: SQLValue.null, count: 10)
            )
            #expect(nulls.lastInsertID == 2)

            let row = try #require(try db.queryFirst("SELECT * FROM t WHERE id = ?", [UInt64(1)]))
            #expect(try row.decode("i", as: Int64.self) == Int64.min)
            #expect(try row.decode("u", as: UInt64.self) == UInt64.max)
            #expect(try row.decode("d", as: Double.self) == 3.25)
            #expect(try row.decode("s", as: String.self) == emoji)
            #expect(try row.decode("b", as: Bool.self) == true)
            #expect(try row.decode("dt", as: Date.self) == date)
            #expect(try row.decode("ts", as: Date.self) == date)
            #expect(try row.decode("bin", as: Data.self) == bytes)
            #expect(try row.decode("big", as: String.self) == big)
            #expect(big.utf8.count > 1_000_000)
            let storedJSON = try row.decode("j", as: String.self)
            let parsed = try JSONSerialization.jsonObject(with: Data(storedJSON.utf8)) as? [String: Any]
            #expect(parsed?["name"] as? String == "Zoë 🎉")
            #expect(parsed?["q"] as? String == "a\"b")

            let empty = try #require(try db.queryFirst("SELECT * FROM t WHERE id = 2"))
            for column in ["i", "u", "d", "s", "b", "dt", "ts", "bin", "j", "big"] {
                #expect(empty[column] == .null, "column \(column)")
                #expect(try empty.decodeIfPresent(column, as: String.self) == nil)
            }
        }
    }

    @Test func jsonFunctionsSeeBoundText() throws {
        try withTestDatabase { _, db in
            try db.execute("CREATE TABLE t (id INT PRIMARY KEY, j JSON)")
            try db.execute("INSERT INTO t VALUES (1, ?)", [#"{"city": "Zürich 🏔"}"#])
            let row = try #require(
                try db.queryFirst("SELECT JSON_VALUE(j, '$.city') AS city, JSON_VALID(j) AS ok FROM t"))
            #expect(try row.decode("city", as: String.self) == "Zürich 🏔")
            #expect(try row.decode("ok", as: Int.self) == 1)
        }
    }

    @Test func duplicateKeyIsError1062WithSQLState23000() throws {
        try withTestDatabase { _, db in
            try db.execute("CREATE TABLE t (id INT PRIMARY KEY, secret VARCHAR(50))")
            try db.execute("INSERT INTO t VALUES (?, ?)", [1, "first"])
            let error = #expect(throws: MariaDBError.self) {
                try db.execute("INSERT INTO t VALUES (?, ?)", [1, "hunter2-bound-value"])
            }
            #expect(error?.number == 1062)
            #expect(error?.sqlState == "23000")
            #expect(error?.isDuplicateKey == true)
            #expect(error?.code == .server)
            #expect(error?.description.contains("hunter2-bound-value") == false)
            #expect(error?.description.contains("1062") == true)
        }
    }

    @Test func affectedRowsCountsMatchedRows() throws {
        try withTestDatabase { _, db in
            try db.execute("CREATE TABLE t (id INT PRIMARY KEY, status VARCHAR(20))")
            for i in 1...5 { try db.execute("INSERT INTO t VALUES (?, 'pending')", [i]) }
            #expect(try db.execute("UPDATE t SET status = 'x' WHERE id > ?", [100]).affectedRows == 0)
            #expect(try db.execute("UPDATE t SET status = 'sent' WHERE id <= ?", [3]).affectedRows == 3)
            // Rows that match but already hold the value still count (CLIENT_FOUND_ROWS): a fenced
            // write can tell "matched" from "lost the race".
            #expect(try db.execute("UPDATE t SET status = 'sent' WHERE id <= ?", [3]).affectedRows == 3)
            #expect(try db.execute("DELETE FROM t WHERE status = ?", ["pending"]).affectedRows == 2)
        }
    }

    @Test func transactionRollsBackOnError() throws {
        struct Boom: Error {}
        try withTestDatabase { _, db in
            try db.execute("CREATE TABLE t (id INT PRIMARY KEY) ENGINE=InnoDB")
            #expect(throws: Boom.self) {
                try db.transaction {
                    try db.execute("INSERT INTO t VALUES (?)", [1])
                    throw Boom()
                }
            }
            _ = try db.transaction { try db.execute("INSERT INTO t VALUES (?)", [2]) }
            let ids = try db.query("SELECT id FROM t").map { try $0.decode("id", as: Int.self) }
            #expect(ids == [2])
        }
    }

    @Test func rowsStreamOneAtATime() throws {
        try withTestDatabase { _, db in
            try db.execute("CREATE TABLE t (id INT PRIMARY KEY, name VARCHAR(20))")
            try db.execute("INSERT INTO t SELECT seq, CONCAT('n', seq) FROM seq_1_to_5000")
            var count = 0
            var sum = 0
            try db.prepare("SELECT id, name FROM t ORDER BY id").forEachRow { row in
                count += 1
                sum += try row.decode("id", as: Int.self)
                #expect(try row.decode("name", as: String.self) == "n\(count)")
            }
            #expect(count == 5000)
            #expect(sum == 5000 * 5001 / 2)
            // The connection is usable again after an early stop.
            struct Stop: Error {}
            #expect(throws: Stop.self) { try db.prepare("SELECT id FROM t").forEachRow { _ in throw Stop() } }
            #expect(try db.queryFirst("SELECT COUNT(*) AS n FROM t")?.decode("n", as: Int.self) == 5000)
        }
    }

    @Test func wrongParameterCountIsAnError() throws {
        try withTestDatabase { _, db in
            let error = #expect(throws: MariaDBError.self) { try db.query("SELECT ? + ?", [1]) }
            #expect(error?.code == .parameterCount)
        }
    }

    @Test func wrongPasswordIsAConnectError() throws {
        var configuration = TestEnvironment.database
        configuration.password = "not-the-password-xyz"
        let error = #expect(throws: MariaDBError.self) { try Connection(configuration) }
        #expect(error?.code == .connect)
        #expect(error?.number == 1045)
        #expect(error?.isUnavailable == true)
        #expect(error?.description.contains("not-the-password-xyz") == false)
    }

    @Test func nothingListeningIsAConnectError() throws {
        let configuration = ConnectionConfiguration(host: "127.0.0.1", port: 1, user: "x", connectTimeout: 2)
        let error = #expect(throws: MariaDBError.self) { try Connection(configuration) }
        #expect(error?.code == .connect)
        #expect(error?.number == 2002 || error?.number == 2003)
    }

    @Test func killedConnectionIsReportedAsLost() throws {
        let victim = try Connection(TestEnvironment.database)
        let id = try #require(try victim.queryFirst("SELECT CONNECTION_ID() AS id")?.decode("id", as: UInt64.self))
        let admin = try Connection(TestEnvironment.database)
        try admin.execute("KILL CONNECTION \(id)")
        let error = #expect(throws: MariaDBError.self) { try victim.query("SELECT 1") }
        #expect(error?.code == .connectionLost)
        #expect([2006, 2013, 1927, 4031].contains(error?.number ?? 0))
    }
}

/// `DB_HOST` as users write it: one host, or a list of nodes with optional ports.
struct HostListTests {
    @Test func hostsWithAndWithoutPorts() throws {
        let hosts = try #require(ConnectionConfiguration.hostList(" db1, db2:3307 ,[::1]:3308,::1", defaultPort: 3306))
        #expect(hosts.map(\.host) == ["db1", "db2", "::1", "::1"])
        #expect(hosts.map(\.port) == [3306, 3307, 3308, 3306])
    }

    @Test func badListsAreRefused() {
        for text in ["", " ", "db1, ,db2", "db1:x", "db1:0", "db1:70000", "[::1]x", ":3306"] {
            #expect(ConnectionConfiguration.hostList(text, defaultPort: 3306) == nil, "\(text)")
        }
    }
}
