/// Checks a recipient address as an untrusted host application stored it.
///
/// Accepts a plain RFC 5321 mailbox: a dot-atom or quoted local part (≤ 64 octets), `@`, and a
/// domain of at least two LDH labels or an address literal `[1.2.3.4]`; ≤ 254 octets in all.
/// Anything that could end a header or an SMTP command (CR, LF, NUL, controls, `<`, `>`, `,`,
/// `;`, spaces) is refused, as are non-ASCII addresses (they would need SMTPUTF8).
public enum EmailAddress {
    private static let atext = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&'*+-/=?^_`{|}~".unicodeScalars)

    /// The address, trimmed, or a reason a person can act on.
    public static func validate(_ raw: String) -> Result<String, AddressProblem> {
        let address = raw.trimmingASCIISpaces()
        let shown = show(raw)
        func fail(_ why: String) -> Result<String, AddressProblem> { .failure(AddressProblem(reason: "invalid email address \(shown): \(why)")) }
        if address.isEmpty { return fail("it is empty") }
        if address.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F }) {
            return fail("it contains a line break or control character")
        }
        if !address.unicodeScalars.allSatisfy(\.isASCII) {
            return fail("non-ASCII addresses are not supported")
        }
        if address.utf8.count > 254 { return fail("longer than 254 characters") }
        guard let at = address.lastIndex(of: "@") else { return fail("it has no @") }
        let local = String(address[..<at])
        let domain = String(address[address.index(after: at)...])
        if local.isEmpty { return fail("nothing before the @") }
        if local.utf8.count > 64 { return fail("the part before the @ is longer than 64 characters") }
        if local.hasPrefix("\"") {
            guard local.count >= 2, local.hasSuffix("\"") else { return fail("unbalanced quotes") }
            let inner = local.dropFirst().dropLast()
            var escaped = false
            for c in inner.unicodeScalars {
                if escaped { escaped = false; continue }
                if c == "\\" { escaped = true; continue }
                if c == "\"" { return fail("unescaped quote in the quoted part") }
            }
            if escaped { return fail("unfinished escape in the quoted part") }
        } else {
            if local.hasPrefix(".") || local.hasSuffix(".") || local.contains("..") {
                return fail("misplaced dot before the @")
            }
            if let bad = local.unicodeScalars.first(where: { $0 != "." && !atext.contains($0) }) {
                return fail("'\(bad)' is not allowed before the @")
            }
        }
        if domain.isEmpty { return fail("nothing after the @") }
        if domain.hasPrefix("[") {
            guard domain.hasSuffix("]") else { return fail("unclosed address literal") }
            let octets = domain.dropFirst().dropLast().split(separator: ".", omittingEmptySubsequences: false)
            guard octets.count == 4, octets.allSatisfy({ Int($0).map { (0...255).contains($0) } ?? false }) else {
                return fail("not an IPv4 address literal")
            }
            return .success(address)
        }
        let labels = domain.split(separator: ".", omittingEmptySubsequences: false)
        if labels.count < 2 { return fail("the domain needs a dot (\(show(domain)))") }
        for label in labels {
            if label.isEmpty { return fail("empty label in the domain") }
            if label.utf8.count > 63 { return fail("a domain label is longer than 63 characters") }
            if label.hasPrefix("-") || label.hasSuffix("-") { return fail("a domain label starts or ends with '-'") }
            if !label.unicodeScalars.allSatisfy({ $0.properties.isASCIIHexDigit || ("a"..."z").contains($0) || ("A"..."Z").contains($0) || ("0"..."9").contains($0) || $0 == "-" }) {
                return fail("the domain may hold letters, digits, '-' and dots only")
            }
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

extension String {
    func trimmingASCIISpaces() -> String {
        var s = Substring(self)
        while s.first == " " || s.first == "\t" { s = s.dropFirst() }
        while s.last == " " || s.last == "\t" { s = s.dropLast() }
        return String(s)
    }
}
