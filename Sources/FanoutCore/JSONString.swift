/// JSON string escaping (RFC 8259), shared by log lines, reports and wallet request bodies.
public enum JSONString {
    /// The text escaped for the inside of a JSON string: quotes, backslashes, control
    /// characters, and U+2028/U+2029 (which break JavaScript embedding).
    public static func escaped(_ text: String) -> String {
        var out = ""
        out.reserveCapacity(text.utf8.count)
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case "\u{08}": out += "\\b"
            case "\u{0C}": out += "\\f"
            case "\u{2028}": out += "\\u2028"
            case "\u{2029}": out += "\\u2029"
            case _ where scalar.value < 0x20 || scalar.value == 0x7F:
                let hex = String(scalar.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default:
                out.unicodeScalars.append(scalar)
            }
        }
        return out
    }

    /// The text as a JSON string literal, quotes included.
    public static func quoted(_ text: String) -> String {
        "\"" + escaped(text) + "\""
    }
}
