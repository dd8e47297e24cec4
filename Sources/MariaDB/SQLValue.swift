#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// A value bound to a statement parameter or read from a result column.
///
/// JSON travels as `.string`. Dates are UTC (`Connection` sets the session time zone to `+00:00`)
/// with microsecond precision.
public enum SQLValue: Sendable, Hashable {
    case null
    case int(Int64)
    case uint(UInt64)
    case double(Double)
    case string(String)
    case bool(Bool)
    case date(Date)
    case data(Data)
}

/// A Swift type that can be bound as a statement parameter.
public protocol SQLEncodable {
    var sqlValue: SQLValue { get }
}

/// A Swift type that can be read from a result column.
public protocol SQLDecodable {
    init?(sqlValue: SQLValue)
}

extension SQLValue: SQLEncodable, SQLDecodable {
    public var sqlValue: SQLValue { self }
    public init?(sqlValue: SQLValue) { self = sqlValue }
}

extension Int64: SQLEncodable, SQLDecodable {
    public var sqlValue: SQLValue { .int(self) }
    public init?(sqlValue: SQLValue) {
        switch sqlValue {
        case .int(let v): self = v
        case .uint(let v): guard let v = Int64(exactly: v) else { return nil }; self = v
        case .bool(let v): self = v ? 1 : 0
        case .string(let s): guard let v = Int64(s) else { return nil }; self = v
        default: return nil
        }
    }
}

extension Int: SQLEncodable, SQLDecodable {
    public var sqlValue: SQLValue { .int(Int64(self)) }
    public init?(sqlValue: SQLValue) {
        guard let v = Int64(sqlValue: sqlValue), let i = Int(exactly: v) else { return nil }
        self = i
    }
}

extension UInt64: SQLEncodable, SQLDecodable {
    public var sqlValue: SQLValue { .uint(self) }
    public init?(sqlValue: SQLValue) {
        switch sqlValue {
        case .uint(let v): self = v
        case .int(let v): guard let v = UInt64(exactly: v) else { return nil }; self = v
        case .bool(let v): self = v ? 1 : 0
        case .string(let s): guard let v = UInt64(s) else { return nil }; self = v
        default: return nil
        }
    }
}

extension Double: SQLEncodable, SQLDecodable {
    public var sqlValue: SQLValue { .double(self) }
    public init?(sqlValue: SQLValue) {
        switch sqlValue {
        case .double(let v): self = v
        case .int(let v): self = Double(v)
        case .uint(let v): self = Double(v)
        case .string(let s): guard let v = Double(s) else { return nil }; self = v
        default: return nil
        }
    }
}

extension String: SQLEncodable, SQLDecodable {
    public var sqlValue: SQLValue { .string(self) }
    public init?(sqlValue: SQLValue) {
        switch sqlValue {
        case .string(let v): self = v
        case .data(let d): self = String(decoding: d, as: UTF8.self)
        case .int(let v): self = String(v)
        case .uint(let v): self = String(v)
        default: return nil
        }
    }
}

extension Bool: SQLEncodable, SQLDecodable {
    public var sqlValue: SQLValue { .bool(self) }
    public init?(sqlValue: SQLValue) {
        switch sqlValue {
        case .bool(let v): self = v
        case .int(let v): self = v != 0
        case .uint(let v): self = v != 0
        default: return nil
        }
    }
}

extension Date: SQLEncodable, SQLDecodable {
    public var sqlValue: SQLValue { .date(self) }
    public init?(sqlValue: SQLValue) {
        guard case .date(let d) = sqlValue else { return nil }
        self = d
    }
}

extension Data: SQLEncodable, SQLDecodable {
    public var sqlValue: SQLValue { .data(self) }
    public init?(sqlValue: SQLValue) {
        switch sqlValue {
        case .data(let d): self = d
        case .string(let s): self = Data(s.utf8)
        default: return nil
        }
    }
}

extension Optional: SQLEncodable where Wrapped: SQLEncodable {
    public var sqlValue: SQLValue { self?.sqlValue ?? .null }
}
