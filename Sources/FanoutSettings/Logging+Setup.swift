import FanoutCore
import Logging
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#endif

/// How log lines are written.
public enum LogFormat: String, CaseIterable, Sendable {
    case text, json
}

/// Writes log lines to stderr and, when `FANOUT_LOG_FILE` is set, appends them to that file.
struct FanoutLogHandler: LogHandler {
    let label: String
    let format: LogFormat
    let sink: LogSink
    var logLevel: Logger.Level
    var metadata: Logger.Metadata = [:]

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        var merged = metadata
        if let extra = event.metadata { merged.merge(extra) { $1 } }
        sink.write(format(level: event.level, message: "\(event.message)", metadata: merged))
    }

    /// One log line in this handler's format.
    func format(level: Logger.Level, message: String, metadata merged: Logger.Metadata) -> String {
        let time = Self.timestamp()
        let line: String
        switch format {
        case .text:
            let fields = merged.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
            line = "\(time) \(level) \(message)\(fields.isEmpty ? "" : " " + fields)"
        case .json:
            var object =
                "{\"time\":\(JSONString.quoted(time)),\"level\":\(JSONString.quoted("\(level)")),"
                + "\"message\":\(JSONString.quoted(message))"
            for (key, value) in merged.sorted(by: { $0.key < $1.key }) {
                object += ",\(JSONString.quoted(key)):\(JSONString.quoted("\(value)"))"
            }
            line = object + "}"
        }
        return line
    }

    static func timestamp() -> String {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        var time = tm()
        var seconds = now.tv_sec
        gmtime_r(&seconds, &time)
        func pad(_ value: Int32, _ width: Int = 2) -> String {
            let text = String(value)
            return String(repeating: "0", count: max(0, width - text.count)) + text
        }
        let date = "\(pad(time.tm_year + 1900, 4))-\(pad(time.tm_mon + 1))-\(pad(time.tm_mday))"
        let milliseconds = pad(Int32(now.tv_nsec / 1_000_000), 3)
        return "\(date)T\(pad(time.tm_hour)):\(pad(time.tm_min)):\(pad(time.tm_sec)).\(milliseconds)Z"
    }
}

/// Where log lines go: stderr, and the optional log file (opened once, appended to).
final class LogSink: Sendable {
    private let fileDescriptor: Int32

    init(file: String?) {
        if let file, !file.isEmpty {
            fileDescriptor = open(file, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o644)
        } else {
            fileDescriptor = -1
        }
    }

    var fileFailed: Bool { fileDescriptor < 0 }

    func write(_ line: String, toStandardError: Bool = true) {
        let bytes = Array((line + "\n").utf8)
        bytes.withUnsafeBytes { buffer in
            if toStandardError { _ = Glibc.write(2, buffer.baseAddress, buffer.count) }
            // One write per line with O_APPEND: lines of concurrent ticks never interleave.
            if fileDescriptor >= 0 { _ = Glibc.write(fileDescriptor, buffer.baseAddress, buffer.count) }
        }
    }
}

public enum LoggingSetup {
    /// Bootstraps swift-log once for the process.
    /// The log file's writer once logging is set up, for the exit line (`recordExit`).
    nonisolated(unsafe) private static var fileHandler: FanoutLogHandler?

    /// Appends the line a command ends with (printed on stderr by itself) to the log file too:
    /// cron users read the file, not stderr.
    public static func recordExit(_ line: String, status: Int32) {
        guard let handler = fileHandler else { return }
        handler.sink.write(
            handler.format(level: .error, message: line, metadata: ["exit": "\(status)"]), toStandardError: false)
    }

    public static func bootstrap(format: LogFormat, verbose: Bool, file: String?) {
        let sink = LogSink(file: file)
        if !sink.fileFailed {
            fileHandler = FanoutLogHandler(label: "fanout", format: format, sink: sink, logLevel: .error)
        }
        LoggingSystem.bootstrap { label in
            FanoutLogHandler(label: label, format: format, sink: sink, logLevel: verbose ? .debug : .info)
        }
        if sink.fileFailed, let file, !file.isEmpty {
            Logger(label: "fanout").warning(
                "cannot open FANOUT_LOG_FILE for appending: \(String(cString: strerror(errno)))",
                metadata: ["file": "\(file)"])
        }
    }
}
