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
    public static func build(from: Mailbox, to: Mailbox, subject: String, text: String?, html: String?, messageID: String, date: Date) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity((text?.utf8.count ?? 0) + (html?.utf8.count ?? 0) + 1024)
        out += header("Date", rfc5322Date(date)).utf8
        out += header("From", mailbox(from)).utf8
        out += header("To", mailbox(to)).utf8
        out += header("Subject", encodedText(singleLine(subject))).utf8
        out += header("Message-ID", messageID).utf8
        out += "MIME-Version: 1.0\r\n".utf8
        switch (text, html) {
        case let (text?, html?):
            // "=_" never occurs in quoted-printable output ("=" is always "=3D" there, and soft
            // breaks are "=" CRLF), so this boundary cannot collide with either part.
            let boundary = boundary(for: messageID)
            out += "Content-Type: multipart/alternative; boundary=\"\(boundary)\"\r\n\r\n".utf8
            out += "This is a multi-part message in MIME format.\r\n".utf8
            out += "--\(boundary)\r\n".utf8
            part("text/plain", text, into: &out)
            out += "\r\n--\(boundary)\r\n".utf8
            part("text/html", html, into: &out)
            out += "\r\n--\(boundary)--\r\n".utf8
        case let (text?, nil):
            part("text/plain", text, into: &out)
        case let (nil, html?):
            part("text/html", html, into: &out)
        case (nil, nil):
            part("text/plain", "", into: &out)
        }
        return out
    }

    private static func part(_ type: String, _ body: String, into out: inout [UInt8]) {
        out += "Content-Type: \(type); charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n".utf8
        quotedPrintable(body, into: &out)
        out += [13, 10]
    }

    private static func header(_ name: String, _ value: String) -> String {
        "\(name): \(value)\r\n"
    }

    /// Controls (CR, LF, TAB, NUL, …) become spaces: a header value is one line.
    static func singleLine(_ text: String) -> String {
        let breaksLine: (Unicode.Scalar) -> Bool = { $0.value < 0x20 || $0.value == 0x7F || $0 == "\u{2028}" || $0 == "\u{2029}" }
        guard text.unicodeScalars.contains(where: breaksLine) else { return text }
        return String(String.UnicodeScalarView(text.unicodeScalars.map { breaksLine($0) ? " " : $0 }))
    }

    /// A tab or a Unicode space separator (what `CharacterSet.whitespaces` holds).
    private static func isBlank(_ character: Character) -> Bool {
        character.unicodeScalars.allSatisfy { $0 == "\t" || $0.properties.generalCategory == .spaceSeparator }
    }

    static func mailbox(_ box: Mailbox) -> String {
        guard let raw = box.name, case let name = singleLine(raw).trimming(where: isBlank), !name.isEmpty else {
            return "<\(box.address)>"
        }
        if name.utf8.allSatisfy({ $0 < 0x80 }) {
            // A quoted-string: backslash and quote are escaped with a backslash.
            var quoted = "\""
            for scalar in name.unicodeScalars {
                if scalar == "\\" || scalar == "\"" { quoted.unicodeScalars.append("\\") }
                quoted.unicodeScalars.append(scalar)
            }
            return quoted + "\" <\(box.address)>"
        }
        return "\(encodedWords(name)) <\(box.address)>"
    }

    /// ASCII text as it is (folded if long); anything else as RFC 2047 encoded-words.
    static func encodedText(_ text: String) -> String {
        if text.unicodeScalars.allSatisfy(\.isASCII) && !text.contains("=?") {
            return fold(text)
        }
        return encodedWords(text)
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
                current += current.isEmpty && lines.isEmpty ? String(word) : (current.isEmpty ? String(word) : " " + word)
            }
        }
        lines.append(current)
        return lines.joined(separator: "\r\n ")
    }

    /// Quoted-printable (RFC 2045): line ends normalised to CRLF, lines of at most 76 characters
    /// with `=` soft breaks, `=`, controls, non-ASCII and trailing blanks encoded.
    static func quotedPrintable(_ text: String) -> String {
        var out: [UInt8] = []
        quotedPrintable(text, into: &out)
        return String(decoding: out, as: UTF8.self)
    }

    private static let hex = Array("0123456789ABCDEF".utf8)

    static func quotedPrintable(_ text: String, into out: inout [UInt8]) {
        var text = text
        let hex = Self.hex
        text.withUTF8 { bytes in
            let count = bytes.count
            // Worst case: every byte as =XX, plus a soft break every 25 of those.
            let capacity = count * 3 + (count / 25 + 2) * 3
            let encoded = [UInt8](unsafeUninitializedCapacity: capacity) { buffer, written in
                var o = 0
                var column = 0
                var index = 0
                while index < count {
                    let byte = bytes[index]
                    if byte == 13 || byte == 10 {
                        // CRLF, lone CR and lone LF all end a line.
                        buffer[o] = 13; buffer[o + 1] = 10; o += 2
                        column = 0
                        index += (byte == 13 && index + 1 < count && bytes[index + 1] == 10) ? 2 : 1
                        continue
                    }
                    if column == 0, let end = Self.plainLineEnd(bytes, from: index) {
                        // The common case, a short line with nothing to encode: copied as it is.
                        (buffer.baseAddress! + o).initialize(from: bytes.baseAddress! + index, count: end - index)
                        o += end - index
                        index = end
                        continue
                    }
                    let next = index + 1 < count ? bytes[index + 1] : 10
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
                written = o
            }
            out += encoded
        }
    }

    /// Where the line starting at `start` ends (its CR, LF or the text's end) when quoted-printable
    /// leaves it exactly as it is: at most 75 characters, printable ASCII other than `=`, blanks
    /// only inside, no leading `.`, not empty. Otherwise nil.
    private static func plainLineEnd(_ bytes: UnsafeBufferPointer<UInt8>, from start: Int) -> Int? {
        let limit = min(bytes.count, start + 76)
        var index = start
        while index < limit {
            let byte = bytes[index]
            if byte == 13 || byte == 10 { break }
            guard (byte >= 33 && byte <= 126 && byte != 61) || byte == 32 || byte == 9 else { return nil }
            index += 1
        }
        guard index > start, index - start <= 75, index == bytes.count || bytes[index] == 13 || bytes[index] == 10 else { return nil }
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
        return "\(days[Int(parts.tm_wday)]), \(parts.tm_mday) \(months[Int(parts.tm_mon)]) \(parts.tm_year + 1900) \(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec)) +0000"
    }
}
