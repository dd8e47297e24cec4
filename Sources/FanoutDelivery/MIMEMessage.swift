import FanoutCore
import Foundation

/// An address with an optional display name.
public struct Mailbox: Sendable, Hashable {
    public var address: String
    public var name: String?

    public init(address: String, name: String? = nil) {
        self.address = address
        self.name = name
    }
}

/// Builds RFC 5322 messages: headers (RFC 2047 encoded where not ASCII), a text and/or HTML body
/// in quoted-printable, multipart/alternative when both exist. CRLF everywhere; no line over 998.
///
/// No header value can start a new header: every CR, LF and control character in a display name
/// or subject is replaced by a space before encoding, and addresses are validated by the caller
/// (`EmailAddress`).
public enum MIMEMessage {
    public static func build(
        from: Mailbox, to: Mailbox, subject: String, text: String?, html: String?, messageID: String, date: Date
    ) -> [UInt8] {
        build(
            fromField: mailbox(from), to: to, subject: subject, text: text.map { Array($0.utf8) },
            html: html.map { Array($0.utf8) }, messageID: messageID, dateField: rfc5322Date(date))
    }

    /// The message with the parts as UTF-8 bytes and the `From` and `Date` values already made
    /// (they are the same for every message of a batch).
    static func build(
        fromField: String, to: Mailbox, subject: String, text: [UInt8]?, html: [UInt8]?, messageID: String,
        dateField: String, extraHeaders: [(name: String, value: String)] = []
    ) -> [UInt8] {
        var head = [
            "Date: ", dateField, "\r\nFrom: ", fromField, "\r\nTo: ", mailbox(to), "\r\nSubject: ",
            encodedText(singleLine(subject)),
            "\r\nMessage-ID: ", messageID, "\r\n",
        ]
        // Values Fanout makes itself (no item text): one line each.
        for header in extraHeaders { head += [header.name, ": ", singleLine(header.value), "\r\n"] }
        head.append("MIME-Version: 1.0\r\n")
        let plain = "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
        let rich = "Content-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
        let parts: [(header: String, body: [UInt8])]
        var boundary = ""
        switch (text, html) {
        case let (text?, html?):
            // "=_" never occurs in quoted-printable output ("=" is always "=3D" there, and soft
            // breaks are "=" CRLF), so this boundary cannot collide with either part.
            boundary = Self.boundary(for: messageID)
            head += [
                "Content-Type: multipart/alternative; boundary=\"", boundary,
                "\"\r\n\r\nThis is a multi-part message in MIME format.\r\n",
            ]
            parts = [(plain, text), (rich, html)]
        case let (text?, nil):
            parts = [(plain, text)]
        case let (nil, html?):
            parts = [(rich, html)]
        case (nil, nil):
            parts = [(plain, [])]
        }
        let capacity =
            head.reduce(0) { $0 + $1.utf8.count }
            + parts.reduce(0) {
                $0 + $1.header.utf8.count + 2 * boundary.utf8.count + 16 + quotedPrintableCapacity($1.body.count)
            }
        let message = [UInt8](unsafeUninitializedCapacity: capacity) { buffer, written in
            var out = ByteWriter(base: buffer.baseAddress!)
            for piece in head { out.append(piece) }
            for part in parts {
                if !boundary.isEmpty { out.append("--\(boundary)\r\n") }
                out.append(part.header)
                part.body.withUnsafeBufferPointer { out.count += quotedPrintable($0, into: out.base + out.count) }
                out.append("\r\n")
                if !boundary.isEmpty { out.append("\r\n") }
            }
            if !boundary.isEmpty { out.append("--\(boundary)--\r\n") }
            precondition(out.count <= capacity, "MIME message overran its buffer")
            written = out.count
        }
        // Sized for the worst case (every byte encoded), the buffer is about three times the
        // message: keep only the message, so what waits to be sent stays small.
        return [UInt8](unsafeUninitializedCapacity: message.count) { buffer, written in
            message.withUnsafeBufferPointer { written = buffer.initialize(from: $0).index }
        }
    }

    /// Appends bytes at a raw pointer (the message is sized once, then written).
    private struct ByteWriter {
        let base: UnsafeMutablePointer<UInt8>
        var count = 0

        mutating func append(_ text: String) {
            var text = text
            text.withUTF8 { bytes in
                guard let source = bytes.baseAddress else { return }
                (base + count).initialize(from: source, count: bytes.count)
                count += bytes.count
            }
        }
    }

    /// Controls (CR, LF, TAB, NUL, …) become spaces: a header value is one line.
    static func singleLine(_ text: String) -> String {
        let breaksLine: (Unicode.Scalar) -> Bool = {
            $0.value < 0x20 || $0.value == 0x7F || $0 == "\u{2028}" || $0 == "\u{2029}"
        }
        guard text.unicodeScalars.contains(where: breaksLine) else { return text }
        return String(String.UnicodeScalarView(text.unicodeScalars.map { breaksLine($0) ? " " : $0 }))
    }

    /// A tab or a Unicode space separator (what `CharacterSet.whitespaces` holds).
    private static func isBlank(_ character: Character) -> Bool {
        character.unicodeScalars.allSatisfy { $0 == "\t" || $0.properties.generalCategory == .spaceSeparator }
    }

    static func mailbox(_ box: Mailbox) -> String {
        guard let raw = box.name else { return "<\(box.address)>" }
        // Printable ASCII without blanks at the ends (the usual name) needs no cleaning.
        let isClean = raw.utf8.first != 32 && raw.utf8.last != 32 && raw.utf8.allSatisfy { $0 >= 0x20 && $0 < 0x7F }
        let name = isClean ? raw : singleLine(raw).trimming(where: isBlank)
        guard !name.isEmpty else { return "<\(box.address)>" }
        if isClean || name.utf8.allSatisfy({ $0 < 0x80 }) {
            // A quoted-string: backslash and quote are escaped with a backslash.
            var quoted: [UInt8] = [UInt8(ascii: "\"")]
            quoted.reserveCapacity(name.utf8.count + box.address.utf8.count + 8)
            for byte in name.utf8 {
                if byte == UInt8(ascii: "\\") || byte == UInt8(ascii: "\"") { quoted.append(UInt8(ascii: "\\")) }
                quoted.append(byte)
            }
            quoted += "\" <".utf8
            quoted += box.address.utf8
            quoted.append(UInt8(ascii: ">"))
            return String(decoding: quoted, as: UTF8.self)
        }
        return "\(encodedWords(name)) <\(box.address)>"
    }

    /// ASCII text as it is (folded if long); anything else as RFC 2047 encoded-words.
    static func encodedText(_ text: String) -> String {
        var previous: UInt8 = 0
        let isPlainASCII = text.utf8.allSatisfy { byte in
            defer { previous = byte }
            return byte < 0x80 && !(previous == UInt8(ascii: "=") && byte == UInt8(ascii: "?"))
        }
        return isPlainASCII ? fold(text) : encodedWords(text)
    }

    /// `=?UTF-8?B?…?=` words of at most 75 characters, never splitting a character, separated
    /// by CRLF SP (folding).
    static func encodedWords(_ text: String) -> String {
        var words: [String] = []
        var chunk: [UInt8] = []
        // 75 - len("=?UTF-8?B?") - len("?=") = 63 base64 chars -> 45 bytes of input.
        for character in text {
            let bytes = Array(String(character).utf8)
            if chunk.count + bytes.count > 45 && !chunk.isEmpty {
                words.append("=?UTF-8?B?\(Data(chunk).base64EncodedString())?=")
                chunk.removeAll()
            }
            chunk += bytes
        }
        if !chunk.isEmpty { words.append("=?UTF-8?B?\(Data(chunk).base64EncodedString())?=") }
        return words.joined(separator: "\r\n ")
    }

    /// Folds a long ASCII header value at spaces so no line passes 78 characters where possible.
    static func fold(_ text: String) -> String {
        guard text.utf8.count > 70 else { return text }
        var lines: [String] = []
        var current = ""
        for word in text.split(separator: " ", omittingEmptySubsequences: false) {
            if !current.isEmpty && current.utf8.count + word.utf8.count + 1 > 70 {
                lines.append(current)
                current = String(word)
            } else {
                current +=
                    current.isEmpty && lines.isEmpty ? String(word) : (current.isEmpty ? String(word) : " " + word)
            }
        }
        lines.append(current)
        return lines.joined(separator: "\r\n ")
    }

    /// Quoted-printable (RFC 2045): line ends normalised to CRLF, lines of at most 76 characters
    /// with `=` soft breaks, `=`, controls, non-ASCII and trailing blanks encoded.
    static func quotedPrintable(_ text: String) -> String {
        let bytes = Array(text.utf8)
        let encoded = [UInt8](unsafeUninitializedCapacity: quotedPrintableCapacity(bytes.count)) { buffer, written in
            written = bytes.withUnsafeBufferPointer { quotedPrintable($0, into: buffer.baseAddress!) }
        }
        return String(decoding: encoded, as: UTF8.self)
    }

    /// The most bytes `quotedPrintable(_:into:)` writes for `count` bytes of input: every byte
    /// as =XX, plus a soft break every 25 of those.
    static func quotedPrintableCapacity(_ count: Int) -> Int {
        count * 3 + (count / 25 + 2) * 3
    }

    private static let hex = Array("0123456789ABCDEF".utf8)

    /// Encodes `bytes` at `buffer`, which holds at least `quotedPrintableCapacity(bytes.count)`
    /// bytes; returns how many it wrote.
    static func quotedPrintable(_ bytes: UnsafeBufferPointer<UInt8>, into buffer: UnsafeMutablePointer<UInt8>) -> Int {
        let count = bytes.count
        guard let input = bytes.baseAddress else { return 0 }
        var o = 0
        var column = 0
        var index = 0
        while index < count {
            let byte = input[index]
            if byte == 13 || byte == 10 {
                // CRLF, lone CR and lone LF all end a line.
                buffer[o] = 13; buffer[o + 1] = 10; o += 2
                column = 0
                index += (byte == 13 && index + 1 < count && input[index + 1] == 10) ? 2 : 1
                continue
            }
            if column == 0, let end = plainLineEnd(bytes, from: index) {
                // The common case, a short line with nothing to encode: copied as it is.
                (buffer + o).initialize(from: input + index, count: end - index)
                o += end - index
                index = end
                continue
            }
            let next = index + 1 < count ? input[index + 1] : 10
            let lineEnds = next == 13 || next == 10
            let printable = byte >= 33 && byte <= 126 && byte != 61 // '='
            let blank = (byte == 32 || byte == 9) && !lineEnds
            // A line starting with "." is escaped too, for servers that do not unstuff well.
            let encode = !(printable || blank) || (column == 0 && byte == 46)
            let width = encode ? 3 : 1
            if column + width > 75 {
                buffer[o] = 61; buffer[o + 1] = 13; buffer[o + 2] = 10; o += 3
                column = 0
            }
            if encode {
                buffer[o] = 61
                buffer[o + 1] = hex[Int(byte >> 4)]
                buffer[o + 2] = hex[Int(byte & 15)]
                o += 3
            } else {
                buffer[o] = byte
                o += 1
            }
            column += width
            index += 1
        }
        return o
    }

    /// Whether none of the 8 bytes of `word` needs encoding inside a line: each is printable
    /// ASCII or a space (0x20…0x7E) and none is `=`. Tabs and line ends answer false.
    @inline(__always)
    private static func isPlain(_ word: UInt64) -> Bool {
        let ones: UInt64 = 0x0101_0101_0101_0101
        let highBits: UInt64 = 0x8080_8080_8080_8080
        let below20 = (word &- ones &* 0x20) & ~word & highBits
        let above7E = ((word &+ ones) | word) & highBits
        let equals = word ^ (ones &* 0x3D)
        let hasEquals = (equals &- ones) & ~equals & highBits
        return below20 | above7E | hasEquals == 0
    }

    /// Where the line starting at `start` ends (its CR, LF or the text's end) when quoted-printable
    /// leaves it exactly as it is: at most 75 characters, printable ASCII other than `=`, blanks
    /// only inside, no leading `.`, not empty. Otherwise nil.
    private static func plainLineEnd(_ bytes: UnsafeBufferPointer<UInt8>, from start: Int) -> Int? {
        let limit = min(bytes.count, start + 76)
        let raw = UnsafeRawPointer(bytes.baseAddress!)
        var index = start
        // Eight bytes at a time while they are all plain; the rest (and the line end) one by one.
        while index + 8 <= limit, isPlain(raw.loadUnaligned(fromByteOffset: index, as: UInt64.self)) {
            index += 8
        }
        while index < limit {
            let byte = bytes[index]
            if byte == 13 || byte == 10 { break }
            guard (byte >= 33 && byte <= 126 && byte != 61) || byte == 32 || byte == 9 else { return nil }
            index += 1
        }
        guard index > start, index - start <= 75, index == bytes.count || bytes[index] == 13 || bytes[index] == 10
        else { return nil }
        let last = bytes[index - 1]
        if last == 32 || last == 9 || bytes[start] == 46 { return nil }
        return index
    }

    /// A boundary derived from the Message-ID (stable for a resend).
    static func boundary(for messageID: String) -> String {
        var hash: UInt64 = 0xcbf29ce484222325
        for byte in messageID.utf8 {
            hash = (hash ^ UInt64(byte)) &* 0x100000001b3
        }
        return "=_fanout_\(String(hash, radix: 36))"
    }

    static func rfc5322Date(_ date: Date) -> String {
        var seconds = time_t(date.timeIntervalSince1970.rounded(.down))
        var parts = tm()
        gmtime_r(&seconds, &parts)
        let days = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
        let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
        func two(_ n: Int32) -> String { n < 10 ? "0\(n)" : "\(n)" }
        let day = "\(days[Int(parts.tm_wday)]), \(parts.tm_mday) \(months[Int(parts.tm_mon)]) \(parts.tm_year + 1900)"
        return "\(day) \(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec)) +0000"
    }
}
