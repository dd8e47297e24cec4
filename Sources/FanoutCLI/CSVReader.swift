#if canImport(Glibc)
import Glibc
#endif

/// An RFC 4180 CSV reader that streams a file of any size: quoted fields with `""` escapes and
/// line breaks inside, CRLF or LF line ends, a UTF-8 byte-order mark ignored.
final class CSVReader {
    struct Failure: Error, CustomStringConvertible {
        let line: Int
        let message: String
        var description: String { "line \(line): \(message)" }
    }

    private let file: UnsafeMutablePointer<FILE>
    private var buffer = [UInt8](repeating: 0, count: 1 << 16)
    private var count = 0
    private var position = 0
    private var atStart = true
    /// The line a record starts on (1-based), for messages.
    private(set) var line = 1
    private var nextLine = 1

    init(path: String) throws {
        guard let file = fopen(path, "r") else {
            throw InputUnavailable(description: "cannot read \(path): \(String(cString: strerror(errno)))")
        }
        self.file = file
    }

    deinit { fclose(file) }

    private func byte() -> UInt8? {
        if position == count {
            count = buffer.withUnsafeMutableBytes { fread($0.baseAddress, 1, $0.count, file) }
            position = 0
            if count == 0 { return nil }
        }
        defer { position += 1 }
        return buffer[position]
    }

    private func peek() -> UInt8? {
        guard let b = byte() else { return nil }
        position -= 1
        return b
    }

    /// The next record's fields, or nil at the end of the file.
    func next() throws -> [String]? {
        if atStart {
            atStart = false
            // A UTF-8 byte-order mark (Excel writes one) is not part of the first field.
            if peek() == 0xEF {
                _ = byte()
                if byte() != 0xBB || byte() != 0xBF {
                    throw Failure(line: 1, message: "the file does not start with valid UTF-8")
                }
            }
        }
        line = nextLine
        guard peek() != nil else { return nil }
        var fields: [String] = []
        var field: [UInt8] = []
        var quoted = false
        var wasQuoted = false
        while true {
            guard let b = byte() else {
                if quoted {
                    throw Failure(line: line, message: "a quoted field is not closed before the end of the file")
                }
                fields.append(String(decoding: field, as: UTF8.self))
                return fields
            }
            if quoted {
                if b == UInt8(ascii: "\"") {
                    if peek() == UInt8(ascii: "\"") { _ = byte(); field.append(b) } else { quoted = false }
                } else {
                    if b == 10 { nextLine += 1 }
                    field.append(b)
                }
                continue
            }
            switch b {
            case UInt8(ascii: ","):
                fields.append(String(decoding: field, as: UTF8.self))
                field.removeAll(keepingCapacity: true)
                wasQuoted = false
            case UInt8(ascii: "\""):
                guard field.isEmpty, !wasQuoted else {
                    throw Failure(
                        line: line,
                        message: "a quote inside an unquoted field (quote the whole field and double the quote)")
                }
                quoted = true
                wasQuoted = true
            case 13:
                if peek() == 10 { _ = byte() }
                nextLine += 1
                fields.append(String(decoding: field, as: UTF8.self))
                return fields
            case 10:
                nextLine += 1
                fields.append(String(decoding: field, as: UTF8.self))
                return fields
            default:
                if wasQuoted { throw Failure(line: line, message: "text after a closing quote") }
                field.append(b)
            }
        }
    }
}

@available(*, unavailable)
extension CSVReader: Sendable {}
