import CCurl

/// One IMAP mailbox read through a reused libcurl easy handle (one connection, logged in once):
/// its UIDVALIDITY and next UID, the UIDs from a point on, and whole messages by UID.
///
/// ```swift
/// let inbox = try IMAPMailbox(url: "imap://mail.example.com:143/INBOX", username: "u", password: "p")
/// let (validity, _) = try inbox.status()
/// for uid in try inbox.uids(from: 1) { let bytes = try inbox.fetch(uid: uid) }
/// ```
/// Fetching marks a message \Seen (libcurl's URL fetch is not a PEEK). See
/// https://curl.se/libcurl/c/imap-fetch.html
public final class IMAPMailbox {
    let handle: EasyHandle
    /// `imap://host:port/` (or `imaps://`), and the mailbox's name.
    public let server: String
    public let mailbox: String

    /// - Parameter url: `imap://host[:port]/MAILBOX` or `imaps://…` (INBOX when no mailbox).
    public init(
        url: String, username: String, password: String, tls: TLSOptions = TLSOptions(),
        timeoutMilliseconds: Int = 30_000
    ) throws(CurlError) {
        guard url.hasPrefix("imap://") || url.hasPrefix("imaps://"),
            let slash = url.dropFirst(url.hasPrefix("imaps://") ? 8 : 7).firstIndex(of: "/")
                ?? Optional(url.endIndex)
        else {
            throw CurlError(
                code: .usage, curlCode: -1, message: "'\(url)' is not an imap:// or imaps:// URL", function: "IMAP")
        }
        server = String(url[..<slash]) + "/"
        let name = slash < url.endIndex ? String(url[url.index(after: slash)...]) : ""
        mailbox = name.isEmpty ? "INBOX" : name
        handle = try EasyHandle()
        try handle.set(CURLOPT_USERNAME, username)
        try handle.set(CURLOPT_PASSWORD, password)
        try handle.set(CURLOPT_CONNECTTIMEOUT_MS, 10_000)
        try handle.set(CURLOPT_TIMEOUT_MS, timeoutMilliseconds)
        try tls.apply(to: handle)
    }

    /// The mailbox's UIDVALIDITY and UIDNEXT (`STATUS`, which does not select it read-only).
    public func status() throws(CurlError) -> (uidValidity: UInt64, uidNext: UInt64) {
        let text = try run(url: server, command: "STATUS \(mailbox) (UIDVALIDITY UIDNEXT)")
        func number(_ name: String) -> UInt64? {
            guard let range = text.firstRange(of: name + " ") else { return nil }
            return UInt64(text[range.upperBound...].prefix { $0.isNumber })
        }
        guard let validity = number("UIDVALIDITY"), let next = number("UIDNEXT") else {
            throw CurlError(
                code: .other, curlCode: -1, message: "no STATUS in the answer: \(text.prefix(200))",
                function: "IMAP STATUS")
        }
        return (validity, next)
    }

    /// The UIDs of the messages from `first` on, ascending.
    public func uids(from first: UInt64) throws(CurlError) -> [UInt64] {
        let text = try run(url: server + mailbox, command: "UID SEARCH UID \(max(1, first)):*")
        let line = text.split(whereSeparator: \.isNewline).first { $0.hasPrefix("* SEARCH") } ?? ""
        // "n:*" always matches the highest UID, even below `first`: keep only those asked for.
        return line.split(separator: " ").dropFirst(2).compactMap { UInt64($0) }.filter { $0 >= first }.sorted()
    }

    /// A whole message, as the server keeps it (CRLF line ends).
    public func fetch(uid: UInt64, maxBytes: Int = 4 << 20) throws(CurlError) -> [UInt8] {
        handle.prepareTransfer()
        handle.state.bodyLimit = maxBytes
        try handle.set(CURLOPT_CUSTOMREQUEST, nil as String?)
        try handle.set(CURLOPT_URL, server + mailbox + "/;UID=\(uid)")
        let result = handle.perform()
        guard result == CURLE_OK else {
            throw CurlError(result, detail: handle.errorDetail, function: "IMAP FETCH UID \(uid)")
        }
        return handle.state.body
    }

    /// Sends `command` and returns the server's untagged answer lines.
    private func run(url: String, command: String) throws(CurlError) -> String {
        handle.prepareTransfer()
        handle.state.bodyLimit = 1 << 20
        try handle.set(CURLOPT_URL, url)
        try handle.set(CURLOPT_CUSTOMREQUEST, command)
        let result = handle.perform()
        guard result == CURLE_OK else {
            throw CurlError(result, detail: handle.errorDetail, function: "IMAP \(command.prefix { $0 != " " })")
        }
        return String(decoding: handle.state.body, as: UTF8.self)
    }
}

@available(*, unavailable)
extension IMAPMailbox: Sendable {}
