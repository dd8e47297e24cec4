import Curl
import FanoutCore
import FanoutSettings
import MariaDB
#if canImport(Glibc)
import Glibc
#endif

/// sysexits(3) codes used by every command.
enum ExitStatus {
    static let ok: Int32 = 0
    static let failure: Int32 = 1
    static let usage: Int32 = 64
    static let noInput: Int32 = 66
    static let unavailable: Int32 = 69
    static let tempFail: Int32 = 75
    static let configuration: Int32 = 78
}

/// An input file that does not exist or cannot be read (a recipients CSV): exit 66.
struct InputUnavailable: Error, CustomStringConvertible {
    var description: String
}

/// A delivery server that cannot be used: exit 69.
struct ServiceUnavailable: Error, CustomStringConvertible {
    var description: String
}

/// Something a person asked for that cannot be done (unknown job, job already finished): exit 1.
struct UserError: Error, CustomStringConvertible {
    var description: String
}

/// Any error turned into the one line and the exit code the CLI ends with.
struct CommandFailure {
    private(set) var message: String
    let status: Int32

    init(_ error: any Error) {
        switch error {
        case let error as ServiceUnavailable:
            (message, status) = (error.description, ExitStatus.unavailable)
        case let error as ConfigurationError:
            (message, status) = (error.description, ExitStatus.configuration)
        case let error as DatabaseGone:
            (message, status) = (error.description, ExitStatus.tempFail)
        case let error as InputUnavailable:
            (message, status) = (error.description, ExitStatus.noInput)
        case let error as MariaDBError where error.number == 1146:
            // ER_NO_SUCH_TABLE: every command meets it first on a database never migrated.
            (message, status) = (
                "the database has no Fanout tables yet (\(error.message)): run 'fanout migrate'",
                ExitStatus.configuration
            )
        case let error as MariaDBError where error.isUnavailable:
            (message, status) = ("database unavailable: \(error)", ExitStatus.unavailable)
        case let error as MariaDBError:
            (message, status) = ("database error: \(error)", ExitStatus.failure)
        case let error as CurlError:
            (message, status) = ("\(error)", error.code == .usage ? ExitStatus.configuration : ExitStatus.unavailable)
        default:
            (message, status) = ("\(error)", ExitStatus.failure)
        }
        // One line, whatever the server said: a multi-line reply (EHLO's) is joined.
        if message.contains(where: \.isNewline) {
            message = message.split(whereSeparator: \.isNewline).map { String($0).trimming(where: \.isWhitespace) }
                .joined(separator: " ")
        }
    }
}

/// Writes one line to standard error.
func printError(_ line: String) {
    let bytes = Array((line + "\n").utf8)
    bytes.withUnsafeBytes { buffer in
        var offset = 0
        while offset < buffer.count {
            let written = write(2, buffer.baseAddress! + offset, buffer.count - offset)
            if written <= 0 { break }
            offset += written
        }
    }
}
