import CCurl
#if canImport(Glibc)
import Glibc
#endif

/// A connection to one SMTP server through a reused libcurl easy handle: consecutive messages
/// share one TCP (and TLS) session.
///
/// ```swift
/// let smtp = try SMTPConnection(SMTPConfiguration(host: "127.0.0.1", port: 2525))
/// let reply = try smtp.send(SMTPMessage(from: "a@b.test", recipients: ["c@d.test"], content: bytes))
/// ```
/// A refusal by the server throws `CurlError` with code `.rejected` and the reply's code and
/// text. See https://curl.se/libcurl/c/smtp-mail.html
public final class SMTPConnection {
    let handle: EasyHandle
    public let configuration: SMTPConfiguration

    public init(_ configuration: SMTPConfiguration) throws(CurlError) {
        self.configuration = configuration
        handle = try EasyHandle()
        handle.state.recordsProtocolLines = true
        // The debug callback is how SMTP reply lines and the commands sent reach us; it only runs
        // in verbose mode (with our own callback set, nothing is printed). HTTP handles skip it.
        try handle.set(CURLOPT_VERBOSE, 1)
        try handle.set(CURLOPT_URL, configuration.url)
        try handle.set(CURLOPT_UPLOAD, 1)
        try handle.set(CURLOPT_CONNECTTIMEOUT_MS, configuration.connectTimeoutMilliseconds)
        try handle.set(CURLOPT_TIMEOUT_MS, configuration.timeoutMilliseconds)
        try handle.set(
            CURLOPT_USE_SSL,
            Int(configuration.security == .startTLS ? CURLUSESSL_ALL.rawValue : CURLUSESSL_NONE.rawValue))
        try configuration.tls.apply(to: handle)
        if let username = configuration.username, !username.isEmpty {
            try handle.set(CURLOPT_USERNAME, username)
            try handle.set(CURLOPT_PASSWORD, configuration.password ?? "")
        }
    }

    /// Sends one message and waits for the server's final reply.
    /// - Throws: `CurlError`: `.rejected` with the server's reply when it refused the message;
    ///   `.connect`, `.tls`, `.login`, `.timeout`, `.connectionBroken` when the session failed.
    @discardableResult
    public func send(_ message: SMTPMessage) throws(CurlError) -> SMTPReply {
        try prepare(message)
        return try finish(handle.perform()).get()
    }

    /// Connects, says EHLO, does STARTTLS and AUTH as configured, then sends NOOP: proves the
    /// server can be used without sending any message. Use a connection of its own for this.
    @discardableResult
    public func verify() throws(CurlError) -> SMTPReply {
        handle.prepareTransfer()
        handle.freeLists()
        // No recipient list of an earlier message may stay set once its list is freed, and a
        // message sent on this connection afterwards must be a message again, not a NOOP.
        try handle.set(CURLOPT_MAIL_RCPT, list: [])
        defer {
            try? handle.set(CURLOPT_CUSTOMREQUEST, nil)
            try? handle.set(CURLOPT_NOBODY, 0)
            try? handle.set(CURLOPT_UPLOAD, 1)
        }
        try handle.set(CURLOPT_UPLOAD, 0)
        try handle.set(CURLOPT_CUSTOMREQUEST, "NOOP")
        try handle.set(CURLOPT_NOBODY, 1)
        return try finish(handle.perform()).get()
    }

    /// Sets the handle up for `message`, for a caller that runs it on a `MultiHandle`.
    func prepare(_ message: SMTPMessage) throws(CurlError) {
        handle.prepareTransfer()
        handle.freeLists()
        handle.state.upload = message.content
        try handle.set(CURLOPT_MAIL_FROM, "<\(message.from)>")
        try handle.set(CURLOPT_MAIL_RCPT, list: message.recipients.map { "<\($0)>" })
        // The size libcurl counts is after dot-stuffing (a "." starting a line, or the message,
        // goes out as ".."): with the raw size it would end DATA early, short of the last bytes.
        try handle.set(CURLOPT_INFILESIZE_LARGE, offset: Int64(Self.stuffedSize(message.content)))
    }

    /// The message's size on the wire inside DATA: one more byte for every line (the first
    /// included) that starts with ".".
    static func stuffedSize(_ content: [UInt8]) -> Int {
        content.withUnsafeBufferPointer { bytes in
            guard let base = bytes.baseAddress, !bytes.isEmpty else { return 0 }
            var size = bytes.count
            if base[0] == UInt8(ascii: ".") { size += 1 }
            // memchr to each ".", then a look back: a few instructions a byte fewer than a loop.
            var index = 1
            while index < bytes.count, let found = memchr(base + index, Int32(UInt8(ascii: ".")), bytes.count - index) {
                let at = base.distance(to: found.assumingMemoryBound(to: UInt8.self))
                if at >= 2, base[at - 1] == 10, base[at - 2] == 13 { size += 1 }
                index = at + 1
            }
            return size
        }
    }

    /// Turns the transfer's result into the server's reply or an error.
    func finish(_ result: CURLcode) -> Result<SMTPReply, CurlError> {
        let state = handle.state
        let responseCode = handle.responseCode
        let reply: SMTPReply?
        if let last = SMTPReplyParser.lastOneLineReply(state.replyBytes), last.code == responseCode {
            reply = last
        } else {
            let replies = SMTPReplyParser.replies(state.replyBytes)
            reply = replies.last { $0.code == responseCode } ?? replies.last
        }
        if result == CURLE_OK {
            return .success(reply ?? SMTPReply(code: responseCode, text: "\(responseCode)"))
        }
        let step = Self.step(state.commandsSent)
        var error = CurlError(
            result,
            detail: handle.errorDetail,
            responseCode: reply?.code ?? responseCode,
            responseText: reply?.text ?? "",
            function: "SMTP \(step)"
        )
        if let code = reply?.code, code >= 400 {
            error.code = step == "AUTH" || code == 535 || code == 534 || code == 530 ? .login : .rejected
        }
        return .failure(error)
    }

    /// The protocol step in progress when a transfer ended: the last command sent, or `connect`.
    static func step(_ commands: [String]) -> String {
        // libcurl ends a failed transaction with QUIT (or RSET): the step is the one before.
        switch commands.last(where: { $0 != "QUIT" && $0 != "RSET" }) {
        case nil: "connect"
        case "MAIL": "MAIL FROM"
        case "RCPT": "RCPT TO"
        case let verb?: verb
        }
    }
}

@available(*, unavailable)
extension SMTPConnection: Sendable {}

/// Groups SMTP reply lines (`250-…`, `250 …`), as received, into replies.
enum SMTPReplyParser {
    static func replies(_ received: [UInt8]) -> [SMTPReply] {
        var replies: [SMTPReply] = []
        var pending: [String] = []
        for line in lines(received) {
            guard let parsed = parse(line) else { continue }
            pending.append(parsed.text)
            if parsed.isLast {
                replies.append(SMTPReply(code: parsed.code, text: "\(parsed.code) " + pending.joined(separator: " ")))
                pending.removeAll()
            }
        }
        return replies
    }

    /// The last reply when it is one line (the usual answer after a transfer), without the
    /// work of the replies before it; nil when it is not, for `replies(_:)` to sort out.
    static func lastOneLineReply(_ received: [UInt8]) -> SMTPReply? {
        let lines = lines(received)
        guard let last = lines.last.flatMap(parse), last.isLast else { return nil }
        // A continuation line (`NNN-`) before it makes it the end of a longer reply.
        if lines.count >= 2, let previous = parse(lines[lines.count - 2]), !previous.isLast { return nil }
        return SMTPReply(code: last.code, text: "\(last.code) " + last.text)
    }

    /// The non-empty lines, split at CR and LF.
    private static func lines(_ received: [UInt8]) -> [ArraySlice<UInt8>] {
        received.split(whereSeparator: { $0 == 13 || $0 == 10 })
    }

    /// `NNN text` ends a reply, `NNN-text` continues it; anything else is not a reply line.
    private static func parse(_ line: ArraySlice<UInt8>) -> (code: Int, isLast: Bool, text: String)? {
        let digits = line.prefix(3)
        guard digits.count == 3, digits.allSatisfy({ $0 >= 48 && $0 <= 57 }) else { return nil }
        let rest = line.dropFirst(3)
        return (
            digits.reduce(0) { $0 * 10 + Int($1 - 48) }, rest.first != UInt8(ascii: "-"),
            String(decoding: rest.dropFirst(), as: UTF8.self)
        )
    }
}
