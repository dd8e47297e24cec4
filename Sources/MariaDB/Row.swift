/// One row of a result, with its columns by position and by name.
public struct Row: Sendable {
    /// The column names of the result, shared by every row.
    public let columns: ColumnNames
    public let values: [SQLValue]

    public init(columns: ColumnNames, values: [SQLValue]) {
        self.columns = columns
        self.values = values
    }

    public subscript(index: Int) -> SQLValue { values[index] }

    /// The value of the named column, or `.null` when there is no such column.
    public subscript(name: String) -> SQLValue {
        guard let index = columns.index(of: name) else { return .null }
        return values[index]
    }

    /// The named column decoded as `T`.
    /// - Throws: `MariaDBError` with code `.typeMismatch` when the column is missing, NULL or of
    ///   another type.
    public func decode<T: SQLDecodable>(_ name: String, as type: T.Type = T.self) throws(MariaDBError) -> T {
        guard let index = columns.index(of: name) else {
            throw MariaDBError(code: .typeMismatch, message: "no column named \(name)", function: "Row.decode")
        }
        return try decode(at: index, name: name)
    }

    /// The named column decoded as `T`, or nil when it is NULL.
    public func decodeIfPresent<T: SQLDecodable>(_ name: String, as type: T.Type = T.self) throws(MariaDBError) -> T? {
        guard let index = columns.index(of: name) else { return nil }
        if case .null = values[index] { return nil }
        return try decode(at: index, name: name)
    }

    private func decode<T: SQLDecodable>(at index: Int, name: String) throws(MariaDBError) -> T {
        guard let value = T(sqlValue: values[index]) else {
            throw MariaDBError(
                code: .typeMismatch,
                message: "column \(name) holds \(values[index].kindName), not \(T.self)",
                function: "Row.decode"
            )
        }
        return value
    }
}

/// The names of a result's columns, looked up by position or name.
public final class ColumnNames: Sendable {
    public let names: [String]
    private let positions: [String: Int]

    init(_ names: [String]) {
        self.names = names
        var positions: [String: Int] = [:]
        for (i, name) in names.enumerated() where positions[name] == nil {
            positions[name] = i
        }
        self.positions = positions
    }

    public func index(of name: String) -> Int? {
        // A few short names compare faster one by one than they hash.
        names.count <= 16 ? names.firstIndex(of: name) : positions[name]
    }
}

extension SQLValue {
    var kindName: String {
        switch self {
        case .null: "NULL"
        case .int: "an integer"
        case .uint: "an unsigned integer"
        case .double: "a double"
        case .string: "a string"
        case .bool: "a bool"
        case .date: "a date"
        case .data: "binary data"
        }
    }
}
