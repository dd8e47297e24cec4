import CMariaDB
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#endif

/// A prepared statement of one connection (binary protocol).
///
/// Parameter buffers and result buffers are owned here and outlive every C call that points at
/// them. See https://mariadb.com/kb/en/api-prepared-statement-functions/
public final class Statement {
    private var handle: UnsafeMutablePointer<MYSQL_STMT>?
    private let parameterCount: Int
    private unowned let connection: Connection

    init(connection: Connection, sql: String) throws(MariaDBError) {
        let mysql = try connection.mysql
        guard let stmt = mysql_stmt_init(mysql) else {
            throw MariaDBError.from(connection: mysql, function: "mysql_stmt_init")
        }
        let status = sql.withCString { mysql_stmt_prepare(stmt, $0, UInt(strlen($0))) }
        if status != 0 {
            let error = MariaDBError.from(statement: stmt, function: "mysql_stmt_prepare")
            mysql_stmt_close(stmt)
            throw error
        }
        self.handle = stmt
        self.connection = connection
        self.parameterCount = Int(mysql_stmt_param_count(stmt))
    }

    deinit { close() }

    /// Frees the statement on the server. Safe to call twice.
    public func close() {
        if let handle { mysql_stmt_close(handle) }
        handle = nil
    }

    private var stmt: UnsafeMutablePointer<MYSQL_STMT> {
        get throws(MariaDBError) {
            guard let handle else {
                throw MariaDBError(code: .closed, message: "the statement is closed", function: "Statement")
            }
            return handle
        }
    }

    /// Runs the statement; for statements that return no rows.
    @discardableResult
    public func execute(_ parameters: [any SQLEncodable] = []) throws(MariaDBError) -> ExecuteResult {
        let stmt = try self.stmt
        try run(stmt, parameters)
        let result = ExecuteResult(
            affectedRows: mysql_stmt_affected_rows(stmt),
            lastInsertID: mysql_stmt_insert_id(stmt)
        )
        mysql_stmt_free_result(stmt)
        return result
    }

    /// Runs the statement and returns every row, read into memory.
    public func query(_ parameters: [any SQLEncodable] = []) throws(MariaDBError) -> [Row] {
        var rows: [Row] = []
        try fetch(parameters) {
            rows.append($0); return true
        }
        return rows
    }

    /// Runs the statement and hands each row to `body` as it arrives from the server, without
    /// reading the whole result into memory (for large reports). The connection is busy until
    /// this returns. An error thrown by `body` stops the calls and is rethrown.
    public func forEachRow(_ parameters: [any SQLEncodable] = [], _ body: (Row) throws -> Void) throws {
        var failure: (any Error)?
        try fetch(parameters) { row in
            do { try body(row) } catch { failure = error; return false }
            return true
        }
        if let failure { throw failure }
    }

    /// Fetches rows until `body` returns false; the rest of the result is then read and dropped.
    private func fetch(_ parameters: [any SQLEncodable], _ body: (Row) -> Bool) throws(MariaDBError) {
        let stmt = try self.stmt
        try run(stmt, parameters)
        defer { mysql_stmt_free_result(stmt) }
        guard let metadata = mysql_stmt_result_metadata(stmt) else { return }
        let columnCount = Int(mysql_num_fields(metadata))
        let fields = mysql_fetch_fields(metadata)!
        var names: [String] = []
        var kinds: [ColumnKind] = []
        for i in 0..<columnCount {
            let field = fields[i]
            names.append(String(cString: field.name))
            kinds.append(ColumnKind(field))
        }
        mysql_free_result(metadata)
        let columns = ColumnNames(names)
        let output = ResultBuffers(kinds: kinds)
        if mysql_stmt_bind_result(stmt, output.binds) != 0 {
            throw MariaDBError.from(statement: stmt, function: "mysql_stmt_bind_result")
        }
        var wanted = true
        while true {
            let status = mysql_stmt_fetch(stmt)
            if status == MYSQL_NO_DATA { break }
            if status == 1 { throw MariaDBError.from(statement: stmt, function: "mysql_stmt_fetch") }
            if wanted {
                wanted = body(Row(columns: columns, values: try output.values(stmt: stmt)))
            }
        }
    }

    private func run(_ stmt: UnsafeMutablePointer<MYSQL_STMT>, _ parameters: [any SQLEncodable]) throws(MariaDBError) {
        guard parameters.count == parameterCount else {
            throw MariaDBError(
                code: .parameterCount,
                message: "the statement takes \(parameterCount) parameters, \(parameters.count) given",
                function: "Statement.execute"
            )
        }
        let input = ParameterBuffers(parameters.map(\.sqlValue))
        if parameterCount > 0, mysql_stmt_bind_param(stmt, input.binds) != 0 {
            throw MariaDBError.from(statement: stmt, function: "mysql_stmt_bind_param")
        }
        let status = withExtendedLifetime(input) { mysql_stmt_execute(stmt) }
        if status != 0 { throw MariaDBError.from(statement: stmt, function: "mysql_stmt_execute") }
    }
}

@available(*, unavailable)
extension Statement: Sendable {}

/// How a result column is read.
enum ColumnKind {
    case signed, unsigned, double, decimal, date, text, binary

    init(_ field: MYSQL_FIELD) {
        let unsigned = field.flags & UInt32(UNSIGNED_FLAG) != 0
        switch field.type {
        case MYSQL_TYPE_TINY, MYSQL_TYPE_SHORT, MYSQL_TYPE_LONG, MYSQL_TYPE_LONGLONG,
            MYSQL_TYPE_INT24, MYSQL_TYPE_YEAR:
            self = unsigned ? .unsigned : .signed
        case MYSQL_TYPE_FLOAT, MYSQL_TYPE_DOUBLE:
            self = .double
        case MYSQL_TYPE_DECIMAL, MYSQL_TYPE_NEWDECIMAL:
            self = .decimal
        case MYSQL_TYPE_TIMESTAMP, MYSQL_TYPE_DATETIME, MYSQL_TYPE_DATE:
            self = .date
        case MYSQL_TYPE_TINY_BLOB, MYSQL_TYPE_MEDIUM_BLOB, MYSQL_TYPE_LONG_BLOB, MYSQL_TYPE_BLOB,
            MYSQL_TYPE_STRING, MYSQL_TYPE_VAR_STRING, MYSQL_TYPE_VARCHAR, MYSQL_TYPE_BIT,
            MYSQL_TYPE_GEOMETRY:
            // Character set 63 is `binary`: BLOB and BINARY columns, as opposed to TEXT and CHAR.
            self = field.charsetnr == 63 ? .binary : .text
        default:
            self = .text
        }
    }
}

/// Input bindings and the memory they point at, alive until the statement has executed.
final class ParameterBuffers {
    let binds: UnsafeMutablePointer<MYSQL_BIND>
    private var allocations: [UnsafeMutableRawPointer] = []
    private let count: Int

    init(_ values: [SQLValue]) {
        count = values.count
        binds = .allocate(capacity: max(count, 1))
        binds.initialize(repeating: MYSQL_BIND(), count: max(count, 1))
        for (i, value) in values.enumerated() {
            bind(value, at: i)
        }
    }

    deinit {
        for allocation in allocations { allocation.deallocate() }
        binds.deinitialize(count: max(count, 1))
        binds.deallocate()
    }

    private func allocate<T>(_ value: T) -> UnsafeMutableRawPointer {
        let pointer = UnsafeMutableRawPointer.allocate(
            byteCount: MemoryLayout<T>.stride, alignment: MemoryLayout<T>.alignment)
        pointer.storeBytes(of: value, as: T.self)
        allocations.append(pointer)
        return pointer
    }

    private func allocate(bytes: some Collection<UInt8>) -> (UnsafeMutableRawPointer, Int) {
        let pointer = UnsafeMutableRawPointer.allocate(byteCount: max(bytes.count, 1), alignment: 1)
        pointer.copyMemory(from: Array(bytes), byteCount: bytes.count)
        allocations.append(pointer)
        return (pointer, bytes.count)
    }

    private func bind(_ value: SQLValue, at i: Int) {
        switch value {
        case .null:
            binds[i].buffer_type = MYSQL_TYPE_NULL
        case .int(let v):
            binds[i].buffer_type = MYSQL_TYPE_LONGLONG
            binds[i].buffer = allocate(v)
        case .uint(let v):
            binds[i].buffer_type = MYSQL_TYPE_LONGLONG
            binds[i].buffer = allocate(v)
            binds[i].is_unsigned = 1
        case .double(let v):
            binds[i].buffer_type = MYSQL_TYPE_DOUBLE
            binds[i].buffer = allocate(v)
        case .bool(let v):
            binds[i].buffer_type = MYSQL_TYPE_TINY
            binds[i].buffer = allocate(Int8(v ? 1 : 0))
        case .string(let s):
            let (pointer, length) = allocate(bytes: s.utf8)
            binds[i].buffer_type = MYSQL_TYPE_STRING
            binds[i].buffer = pointer
            binds[i].buffer_length = UInt(length)
        case .data(let d):
            let (pointer, length) = allocate(bytes: d)
            binds[i].buffer_type = MYSQL_TYPE_BLOB
            binds[i].buffer = pointer
            binds[i].buffer_length = UInt(length)
        case .date(let date):
            binds[i].buffer_type = MYSQL_TYPE_DATETIME
            binds[i].buffer = allocate(MYSQL_TIME(utc: date))
        }
    }
}

/// Output bindings for one result, reused for every row.
final class ResultBuffers {
    let binds: UnsafeMutablePointer<MYSQL_BIND>
    private let kinds: [ColumnKind]
    private let lengths: UnsafeMutablePointer<UInt>
    private let nulls: UnsafeMutablePointer<my_bool>
    private let fixed: UnsafeMutableRawPointer
    private static let slot = max(MemoryLayout<MYSQL_TIME>.stride, 8)

    init(kinds: [ColumnKind]) {
        self.kinds = kinds
        let n = max(kinds.count, 1)
        binds = .allocate(capacity: n)
        binds.initialize(repeating: MYSQL_BIND(), count: n)
        lengths = .allocate(capacity: n)
        lengths.initialize(repeating: 0, count: n)
        nulls = .allocate(capacity: n)
        nulls.initialize(repeating: 0, count: n)
        fixed = .allocate(byteCount: Self.slot * n, alignment: 8)
        for (i, kind) in kinds.enumerated() {
            binds[i].length = lengths + i
            binds[i].is_null = nulls + i
            switch kind {
            case .signed, .unsigned:
                binds[i].buffer_type = MYSQL_TYPE_LONGLONG
                binds[i].is_unsigned = kind == .unsigned ? 1 : 0
                binds[i].buffer = fixed + i * Self.slot
                binds[i].buffer_length = 8
            case .double:
                binds[i].buffer_type = MYSQL_TYPE_DOUBLE
                binds[i].buffer = fixed + i * Self.slot
                binds[i].buffer_length = 8
            case .date:
                binds[i].buffer_type = MYSQL_TYPE_DATETIME
                binds[i].buffer = fixed + i * Self.slot
                binds[i].buffer_length = UInt(MemoryLayout<MYSQL_TIME>.stride)
            case .text, .binary, .decimal:
                // Variable length: fetch reports the length, then mysql_stmt_fetch_column reads it.
                binds[i].buffer_type = kind == .binary ? MYSQL_TYPE_BLOB : MYSQL_TYPE_STRING
                binds[i].buffer = nil
                binds[i].buffer_length = 0
            }
        }
    }

    deinit {
        let n = max(kinds.count, 1)
        binds.deinitialize(count: n)
        binds.deallocate()
        lengths.deallocate()
        nulls.deallocate()
        fixed.deallocate()
    }

    func values(stmt: UnsafeMutablePointer<MYSQL_STMT>) throws(MariaDBError) -> [SQLValue] {
        var values: [SQLValue] = []
        values.reserveCapacity(kinds.count)
        for (i, kind) in kinds.enumerated() {
            if nulls[i] != 0 {
                values.append(.null)
                continue
            }
            switch kind {
            case .signed:
                values.append(.int(binds[i].buffer.load(as: Int64.self)))
            case .unsigned:
                values.append(.uint(binds[i].buffer.load(as: UInt64.self)))
            case .double:
                values.append(.double(binds[i].buffer.load(as: Double.self)))
            case .date:
                values.append(.date(binds[i].buffer.load(as: MYSQL_TIME.self).utcDate))
            case .text, .binary, .decimal:
                let bytes = try column(i, stmt: stmt)
                values.append(kind == .binary ? .data(Data(bytes)) : .string(String(decoding: bytes, as: UTF8.self)))
            }
        }
        return values
    }

    private func column(_ i: Int, stmt: UnsafeMutablePointer<MYSQL_STMT>) throws(MariaDBError) -> [UInt8] {
        let length = Int(lengths[i])
        if length == 0 { return [] }
        var bytes = [UInt8](repeating: 0, count: length)
        var bind = MYSQL_BIND()
        var fetchedLength: UInt = 0
        let status = bytes.withUnsafeMutableBytes { buffer in
            bind.buffer_type = binds[i].buffer_type
            bind.buffer = buffer.baseAddress
            bind.buffer_length = UInt(length)
            return withUnsafeMutablePointer(to: &fetchedLength) { lengthPointer in
                bind.length = lengthPointer
                return mysql_stmt_fetch_column(stmt, &bind, UInt32(i), 0)
            }
        }
        if status != 0 { throw MariaDBError.from(statement: stmt, function: "mysql_stmt_fetch_column") }
        return bytes
    }
}

extension MYSQL_TIME {
    init(utc date: Date) {
        let micros = (date.timeIntervalSince1970 * 1_000_000).rounded()
        var seconds = Int64((micros / 1_000_000).rounded(.down))
        let fraction = Int64(micros) - seconds * 1_000_000
        let days = Int64((Double(seconds) / 86_400).rounded(.down))
        seconds -= days * 86_400
        let (year, month, day) = civilFromDays(days)
        self.init()
        self.year = UInt32(year)
        self.month = UInt32(month)
        self.day = UInt32(day)
        self.hour = UInt32(seconds / 3600)
        self.minute = UInt32(seconds % 3600 / 60)
        self.second = UInt32(seconds % 60)
        self.second_part = UInt(fraction)
        self.time_type = MYSQL_TIMESTAMP_DATETIME
    }

    var utcDate: Date {
        let days = daysFromCivil(Int64(year), Int64(month), Int64(day))
        let seconds = days * 86_400 + Int64(hour) * 3600 + Int64(minute) * 60 + Int64(second)
        return Date(timeIntervalSince1970: Double(seconds) + Double(second_part) / 1_000_000)
    }
}

// Howard Hinnant's days-from-civil algorithms: proleptic Gregorian calendar, no Calendar needed.
func daysFromCivil(_ y0: Int64, _ m: Int64, _ d: Int64) -> Int64 {
    let y = m <= 2 ? y0 - 1 : y0
    let era = (y >= 0 ? y : y - 399) / 400
    let yoe = y - era * 400
    let doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
    return era * 146_097 + doe - 719_468
}

func civilFromDays(_ z0: Int64) -> (Int64, Int64, Int64) {
    let z = z0 + 719_468
    let era = (z >= 0 ? z : z - 146_096) / 146_097
    let doe = z - era * 146_097
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365
    let y = yoe + era * 400
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
    let mp = (5 * doy + 2) / 153
    let d = doy - (153 * mp + 2) / 5 + 1
    let m = mp < 10 ? mp + 3 : mp - 9
    return (m <= 2 ? y + 1 : y, m, d)
}
