import CCurl

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
        try handle.set(CURLOPT_USE_SSL, Int(configuration.security == .startTLS ? CURLUSESSL_ALL.rawValue : CURLUSESSL_NONE.rawValue))
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
        try handle.set(CURLOPT_INFILESIZE_LARGE, offset: Int64(message.content.count))
    }

    /// Turns the transfer's result into the server's reply or an error.
    func finish(_ result: CURLcode) -> Result<SMTPReply, CurlError> {
        let state = handle.state
        let responseCode = handle.responseCode
        let reply: SMTPReply?
        if let last = SMTPReplyParser.lastOneLineReply(state.replyBytes), last.code == responseCode {
            reply = last
        } else {
            let replies = SMTPReplyParser.replies(state.replyLines)
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

/// Groups SMTP reply lines (`250-…`, `250 …`) into replies.
enum SMTPReplyParser {
    /// The last reply when it is one line (the usual answer after a transfer), read straight
    /// from the bytes received; nil when it is not, for `replies(_:)` to sort out.
    static func lastOneLineReply(_ bytes: [UInt8]) -> SMTPReply? {
        func isLineEnd(_ byte: UInt8) -> Bool { byte == 13 || byte == 10 }
        var end = bytes.endIndex
        while end > 0, isLineEnd(bytes[end - 1]) { end -= 1 }
        var start = end
        while start > 0, !isLineEnd(bytes[start - 1]) { start -= 1 }
        let line = bytes[start..<end]
        guard line.count >= 3, line.prefix(3).allSatisfy({ $0 >= 48 && $0 <= 57 }),
              line.count == 3 || line[start + 3] == UInt8(ascii: " ")
        else { return nil }
        // A continuation line (`NNN-`) before it makes it the end of a longer reply.
        var previous = start
        while previous > 0, isLineEnd(bytes[previous - 1]) { previous -= 1 }
        var previousStart = previous
        while previousStart > 0, !isLineEnd(bytes[previousStart - 1]) { previousStart -= 1 }
        if previous - previousStart >= 4 && bytes[previousStart + 3] == UInt8(ascii: "-") { return nil }
        let code = Int(line[start] - 48) * 100 + Int(line[start + 1] - 48) * 10 + Int(line[start + 2] - 48)
        return SMTPReply(code: code, text: line.count == 3 ? "\(code) " : String(decoding: line, as: UTF8.self))
    }

    static func replies(_ lines: [String]) -> [SMTPReply] {
        var replies: [SMTPReply] = []
        var pending: [String] = []
        for var line in lines {
            // `NNN text` ends a reply, `NNN-text` continues it; anything else is not a reply line.
            let parsed: (code: Int, last: Bool, text: String)? = line.withUTF8 { bytes in
                guard bytes.count >= 3, bytes[0...2].allSatisfy({ $0 >= 48 && $0 <= 57 }) else { return nil }
                let code = Int(bytes[0] - 48) * 100 + Int(bytes[1] - 48) * 10 + Int(bytes[2] - 48)
                let text = bytes.count > 4 ? String(decoding: UnsafeBufferPointer(rebasing: bytes[4...]), as: UTF8.self) : ""
                return (code, bytes.count == 3 || bytes[3] != UInt8(ascii: "-"), text)
            }
            guard let parsed else { continue }
            pending.append(parsed.text)
            if parsed.last {
                replies.append(SMTPReply(code: parsed.code, text: "\(parsed.code) " + pending.joined(separator: " ")))
                pending.removeAll()
            }
        }
        return replies
    }
}
