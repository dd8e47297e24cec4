import FanoutCore

/// A Laravel-style `.env` file, parsed by phpdotenv's rules: `KEY=value` lines, blank lines and
/// `#` comments, an optional `export ` prefix, single quotes (literal), double quotes (escapes
/// `\n \t \" \\ \$` and `${VAR}` expansion), unquoted values (inline ` #` comment stripped,
/// `${VAR}` expanded). A reference sees variables defined earlier in the file and the real
/// environment (which wins).
struct DotEnv {
    struct ParseError: Error, CustomStringConvertible {
        let line: Int
        let message: String
        var description: String { "line \(line): \(message)" }
    }

    static func parse(_ text: String, environment: [String: String] = [:]) throws(ParseError) -> [String: String] {
        var values: [String: String] = [:]
        let lines = text.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r\n" })
        var index = 0
        while index < lines.count {
            let number = index + 1
            var line = String(lines[index]).trimming { $0 == " " }
            if line.hasSuffix("\r") { line.removeLast() }
            index += 1
            if line.isEmpty || line.hasPrefix("#") { continue }
            if line.hasPrefix("export ") { line = String(line.dropFirst("export ".count)).trimming { $0 == " " } }
            guard let equals = line.firstIndex(of: "=") else {
                throw ParseError(line: number, message: "expected KEY=value")
            }
            let key = String(line[..<equals]).trimming { $0 == " " }
            guard !key.isEmpty, key.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" || $0 == "." }) else {
                throw ParseError(line: number, message: "'\(key)' is not a variable name")
            }
            var rest = String(line[line.index(after: equals)...]).trimming { $0 == " " }
            let lookup: (String) -> String = { name in environment[name] ?? values[name] ?? "" }
            if let quote = rest.first, quote == "\"" || quote == "'" {
                // A quoted value may span lines until its closing quote.
                var body = String(rest.dropFirst())
                while !Self.hasClosingQuote(body, quote) && index < lines.count {
                    body += "\n" + String(lines[index])
                    index += 1
                }
                guard let close = Self.closingQuote(body, quote) else {
                    throw ParseError(line: number, message: "missing closing \(quote) for \(key)")
                }
                let inner = String(body[..<close])
                rest = quote == "'" ? inner : Self.expand(Self.unescape(inner), lookup)
            } else {
                if let comment = Self.inlineComment(rest) { rest = String(rest[..<comment]) }
                rest = Self.expand(rest.trimming { $0 == " " }, lookup)
            }
            values[key] = rest
        }
        return values
    }

    /// Where an unquoted value's ` #` comment starts.
    private static func inlineComment(_ text: String) -> String.Index? {
        var previous: Character = " "
        for index in text.indices {
            if text[index] == "#" && (previous == " " || previous == "\t") { return index }
            previous = text[index]
        }
        return nil
    }

    private static func closingQuote(_ body: String, _ quote: Character) -> String.Index? {
        var escaped = false
        for index in body.indices {
            let c = body[index]
            if escaped { escaped = false; continue }
            if c == "\\" && quote == "\"" { escaped = true; continue }
            if c == quote { return index }
        }
        return nil
    }

    private static func hasClosingQuote(_ body: String, _ quote: Character) -> Bool {
        closingQuote(body, quote) != nil
    }

    private static func unescape(_ text: String) -> String {
        var out = ""
        var escaped = false
        for c in text {
            if escaped {
                switch c {
                case "n": out.append("\n")
                case "t": out.append("\t")
                case "r": out.append("\r")
                case "\"", "\\": out.append(c)
                case "$": out.append("\u{0}$") // kept literal through expansion
                default: out.append("\\"); out.append(c)
                }
                escaped = false
            } else if c == "\\" {
                escaped = true
            } else {
                out.append(c)
            }
        }
        return out
    }

    /// Replaces `${NAME}` with its value; `\$` (marked by unescape) stays a literal `$`.
    private static func expand(_ text: String, _ lookup: (String) -> String) -> String {
        var out = ""
        var rest = Substring(text)
        while let dollar = rest.firstIndex(of: "$") {
            let before = rest[..<dollar]
            if before.last == "\u{0}" {
                out += before.dropLast()
                out += "$"
                rest = rest[rest.index(after: dollar)...]
                continue
            }
            out += before
            let after = rest[rest.index(after: dollar)...]
            if after.first == "{", let close = after.firstIndex(of: "}") {
                out += lookup(String(after[after.index(after: after.startIndex)..<close]))
                rest = after[after.index(after: close)...]
            } else {
                out += "$"
                rest = after
            }
        }
        return out + rest
    }
}
