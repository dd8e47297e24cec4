import FanoutCore

/// Checks a recipient address as an untrusted host application stored it.
///
/// Accepts a plain RFC 5321 mailbox: a dot-atom or quoted local part (≤ 64 octets), `@`, and a
/// domain of at least two LDH labels or an address literal `[1.2.3.4]`; ≤ 254 octets in all.
/// Anything that could end a header or an SMTP command (CR, LF, NUL, controls, `<`, `>`, `,`,
/// `;`, spaces) is refused, as are non-ASCII addresses (they would need SMTPUTF8).
public enum EmailAddress {
    /// RFC 5322 atext, by byte.
    private static let atext: [Bool] = {
        var table = [Bool](repeating: false, count: 128)
        for byte in "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&'*+-/=?^_`{|}~".utf8 {
            table[Int(byte)] = true
        }
        return table
    }()

    /// The address, trimmed, or a reason a person can act on.
    public static func validate(_ raw: String) -> Result<String, AddressProblem> {
        let address = raw.trimming { $0 == " " || $0 == "\t" }
        func fail(_ why: String) -> Result<String, AddressProblem> {
            .failure(AddressProblem(reason: "invalid email address \(show(raw)): \(why)"))
        }
        // On bytes: every check below is about ASCII, and non-ASCII is refused first.
        let bytes = Array(address.utf8)
        if bytes.isEmpty { return fail("it is empty") }
        if bytes.contains(where: { $0 < 0x20 || $0 == 0x7F }) {
            return fail("it contains a line break or control character")
        }
        if bytes.contains(where: { $0 >= 0x80 }) { return fail("non-ASCII addresses are not supported") }
        if bytes.count > 254 { return fail("longer than 254 characters") }
        guard let at = bytes.lastIndex(of: UInt8(ascii: "@")) else { return fail("it has no @") }
        let local = bytes[..<at]
        let domain = bytes[(at + 1)...]
        let dot = UInt8(ascii: "."), quote = UInt8(ascii: "\""), backslash = UInt8(ascii: "\\")
        if local.isEmpty { return fail("nothing before the @") }
        if local.count > 64 { return fail("the part before the @ is longer than 64 characters") }
        if local.first == quote {
            guard local.count >= 2, local.last == quote else { return fail("unbalanced quotes") }
            var escaped = false
            for byte in local.dropFirst().dropLast() {
                if escaped { escaped = false; continue }
                if byte == backslash { escaped = true; continue }
                if byte == quote { return fail("unescaped quote in the quoted part") }
            }
            if escaped { return fail("unfinished escape in the quoted part") }
        } else {
            if local.first == dot || local.last == dot
                || zip(local, local.dropFirst()).contains(where: { $0 == dot && $1 == dot })
            {
                return fail("misplaced dot before the @")
            }
            if let bad = local.first(where: { $0 != dot && !atext[Int($0)] }) {
                return fail("'\(Character(Unicode.Scalar(bad)))' is not allowed before the @")
            }
        }
        if domain.isEmpty { return fail("nothing after the @") }
        if domain.first == UInt8(ascii: "[") {
            guard domain.last == UInt8(ascii: "]") else { return fail("unclosed address literal") }
            let octets = domain.dropFirst().dropLast().split(separator: dot, omittingEmptySubsequences: false)
            guard octets.count == 4,
                octets.allSatisfy({ Int(String(decoding: $0, as: UTF8.self)).map { (0...255).contains($0) } ?? false })
            else {
                return fail("not an IPv4 address literal")
            }
            return .success(address)
        }
        if !domain.contains(dot) {
            return fail("the domain needs a dot (\(show(String(decoding: domain, as: UTF8.self))))")
        }
        let hyphen = UInt8(ascii: "-")
        var labelStart = domain.startIndex
        for index in domain.startIndex...domain.endIndex where index == domain.endIndex || domain[index] == dot {
            let label = domain[labelStart..<index]
            labelStart = index + 1
            if label.isEmpty { return fail("empty label in the domain") }
            if label.count > 63 { return fail("a domain label is longer than 63 characters") }
            if label.first == hyphen || label.last == hyphen { return fail("a domain label starts or ends with '-'") }
            let ldh = label.allSatisfy { byte in
                (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z"))
                    || (byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z"))
                    || (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9")) || byte == hyphen
            }
            if !ldh { return fail("the domain may hold letters, digits, '-' and dots only") }
        }
        return .success(address)
    }

    /// The address in quotes with line breaks and controls made visible, so a reason stays one line.
    static func show(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars.prefix(200) {
            switch scalar {
            case "\r": out += "\\r"
            case "\n": out += "\\n"
            case "\0": out += "\\0"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20 || scalar.value == 0x7F: out += "\\u{\(String(scalar.value, radix: 16))}"
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }
}

/// Why an address cannot be used.
public struct AddressProblem: Error, Sendable, CustomStringConvertible {
    public var reason: String
    public var description: String { reason }
}
