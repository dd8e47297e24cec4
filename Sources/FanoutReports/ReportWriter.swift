import FanoutCore
#if canImport(Glibc)
import Glibc
#endif

/// Where report bytes go: a file or standard output, written in 64 KB blocks, so a report of any
/// size takes constant memory; or memory, taken by the caller piece by piece (a web download).
public final class ReportOutput {
    private let file: UnsafeMutablePointer<FILE>?
    private let owned: Bool
    private var buffer: [UInt8] = []

    /// Standard output.
    public init() {
        // fdopen of descriptor 1 rather than the C global `stdout`, which Swift 6 will not share.
        file = fdopen(1, "w")
        owned = false
        buffer.reserveCapacity(1 << 16)
    }

    /// A file, created or truncated.
    public init(path: String) throws(ReportError) {
        guard let file = fopen(path, "w") else {
            throw ReportError(description: "cannot write \(path): \(String(cString: strerror(errno)))")
        }
        self.file = file
        owned = true
        buffer.reserveCapacity(1 << 16)
    }

    /// Memory: what is written stays until `take()`.
    public init(collecting: Void) {
        file = nil
        owned = false
    }

    public func write(_ text: String) {
        buffer.append(contentsOf: text.utf8)
        if buffer.count >= 1 << 16, file != nil { flush() }
    }

    /// The bytes written since the last `take()` (collecting output only).
    public func take() -> [UInt8] {
        defer { buffer.removeAll(keepingCapacity: true) }
        return buffer
    }

    public func flush() {
        guard let file else { return }
        buffer.withUnsafeBytes { bytes in
            if let base = bytes.baseAddress { _ = fwrite(base, 1, bytes.count, file) }
        }
        buffer.removeAll(keepingCapacity: true)
        fflush(file)
    }

    public func close() {
        flush()
        if owned, let file { fclose(file) }
    }
}

@available(*, unavailable)
extension ReportOutput: Sendable {}

public struct ReportError: Error, Sendable, CustomStringConvertible {
    public var description: String
    public init(description: String) { self.description = description }
}

/// The report formats.
public enum ReportFormat: String, Sendable, CaseIterable {
    case table, csv, json, jsonl, html
}

/// Writes one report: `begin` with the summary, `row` for each item as it streams in, `end`.
public protocol ReportWriter {
    func begin(_ summary: ReportSummary)
    func row(_ item: ReportItem)
    func end()
}

/// The writer for a format.
public func makeReportWriter(_ format: ReportFormat, output: ReportOutput) -> any ReportWriter {
    switch format {
    case .table: TableReportWriter(output: output)
    case .csv: CSVReportWriter(output: output)
    case .json: JSONReportWriter(output: output, lines: false)
    case .jsonl: JSONReportWriter(output: output, lines: true)
    case .html: HTMLReportWriter(output: output)
    }
}

/// Times as every report format writes them.
public enum ReportTime {
    /// Unix seconds as ISO 8601 in UTC with `Z`, whole seconds.
    public static func iso(_ unix: Double) -> String {
        var seconds = time_t(unix.rounded(.down))
        var parts = tm()
        gmtime_r(&seconds, &parts)
        func two(_ n: Int32) -> String { n < 10 ? "0\(n)" : "\(n)" }
        let date = "\(parts.tm_year + 1900)-\(two(parts.tm_mon + 1))-\(two(parts.tm_mday))"
        return "\(date)T\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec))Z"
    }
}

enum Format {
    /// ISO 8601 in UTC with `Z`; empty for none.
    static func time(_ unix: Double?) -> String { unix.map(ReportTime.iso) ?? "" }

    /// A field as plain text (CSV, table, HTML): empty for none, 1/0 for a flag.
    static func text(_ value: ReportValue) -> String {
        switch value {
        case .text(let text): text ?? ""
        case .number(let number): number.map(String.init) ?? ""
        case .flag(let flag): flag ? "1" : "0"
        case .time(let unix): time(unix)
        }
    }

    /// A field as a JSON value.
    static func json(_ value: ReportValue) -> String {
        switch value {
        case .text(let text): text.map(json) ?? "null"
        case .number(let number): number.map(String.init) ?? "null"
        case .flag(let flag): flag ? "true" : "false"
        case .time(let unix): unix.map { json(time($0)) } ?? "null"
        }
    }

    static func duration(_ seconds: Double?) -> String {
        guard let seconds else { return "-" }
        let s = Int(seconds.rounded())
        if s < 60 { return "\(s)s" }
        if s < 3600 { return "\(s / 60)m \(s % 60)s" }
        return "\(s / 3600)h \(s % 3600 / 60)m"
    }

    static func json(_ text: String) -> String { JSONString.quoted(text) }

    static func html(_ text: String) -> String { HTMLText.escaped(text) }
}
