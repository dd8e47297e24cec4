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
    /// `imap://host:port/` (or `imaps://`), and the mailbox's name (decoded from the URL).
    public let server: String
    public let mailbox: String
    /// The name as a URL path carries it, and as an IMAP command does (quoted unless an atom).
    private let mailboxPath: String
    private let mailboxArgument: String

    /// - Parameter url: `imap://host[:port]/MAILBOX` or `imaps://…` (INBOX when no mailbox); the
    ///   name as written or percent-encoded (`Bounce%20Box`). ASCII names only (IMAP's modified
    ///   UTF-7 is not made here).
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
        mailbox = name.isEmpty ? "INBOX" : Self.percentDecoded(name)
        guard !mailbox.utf8.contains(where: { $0 < 0x20 || $0 == 0x7F }) else {
            throw CurlError(
                code: .usage, curlCode: -1, message: "the mailbox name in '\(url)' has a control character",
                function: "IMAP")
        }
        // libcurl decodes the path again for the commands it makes; "/" separates a hierarchy.
        mailboxPath = PercentEncoding.encoded(mailbox, keeping: "/")
        mailboxArgument = Self.quoted(mailbox)
        handle = try EasyHandle()
        try handle.set(CURLOPT_USERNAME, username)
        try handle.set(CURLOPT_PASSWORD, password)
        try handle.set(CURLOPT_CONNECTTIMEOUT_MS, 10_000)
        try handle.set(CURLOPT_TIMEOUT_MS, timeoutMilliseconds)
        try tls.apply(to: handle)
    }

    /// The mailbox's UIDVALIDITY and UIDNEXT (`STATUS`, which does not select it read-only).
    public func status() throws(CurlError) -> (uidValidity: UInt64, uidNext: UInt64) {
        let text = try run(url: server, command: "STATUS \(mailboxArgument) (UIDVALIDITY UIDNEXT)")
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
        let text = try run(url: server + mailboxPath, command: "UID SEARCH UID \(max(1, first)):*")
        let line = text.split(whereSeparator: \.isNewline).first { $0.hasPrefix("* SEARCH") } ?? ""
        // "n:*" always matches the highest UID, even below `first`: keep only those asked for.
        return line.split(separator: " ").dropFirst(2).compactMap { UInt64($0) }.filter { $0 >= first }.sorted()
    }

    /// A whole message, as the server keeps it (CRLF line ends).
    public func fetch(uid: UInt64, maxBytes: Int = 4 << 20) throws(CurlError) -> [UInt8] {
        handle.prepareTransfer()
        handle.state.bodyLimit = maxBytes
        try handle.set(CURLOPT_CUSTOMREQUEST, nil as String?)
        try handle.set(CURLOPT_URL, server + mailboxPath + "/;UID=\(uid)")
        let result = handle.perform()
        guard result == CURLE_OK else {
            throw CurlError(result, detail: handle.errorDetail, function: "IMAP FETCH UID \(uid)")
        }
        return handle.state.body
    }

    /// `%XX` sequences decoded (the rest as it is).
    static func percentDecoded(_ text: String) -> String {
        let bytes = Array(text.utf8)
        var decoded: [UInt8] = []
        var index = 0
        while index < bytes.count {
            if bytes[index] == UInt8(ascii: "%"), index + 2 < bytes.count,
                let high = hexValue(bytes[index + 1]), let low = hexValue(bytes[index + 2])
            {
                decoded.append(high << 4 | low)
                index += 3
            } else {
                decoded.append(bytes[index])
                index += 1
            }
        }
        return String(decoding: decoded, as: UTF8.self)
    }

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: nil
        }
    }

    /// The name as an IMAP astring: as it is when it is an atom, else a quoted string.
    static func quoted(_ name: String) -> String {
        let special = Array("(){ %*\"\\]".utf8)
        let atom = !name.isEmpty && name.utf8.allSatisfy { $0 > 0x20 && $0 < 0x7F && !special.contains($0) }
        if atom { return name }
        var text = "\""
        for character in name {
            if character == "\"" || character == "\\" { text.append("\\") }
            text.append(character)
        }
        return text + "\""
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
