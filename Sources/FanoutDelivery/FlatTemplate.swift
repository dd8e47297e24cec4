import Foundation
import Mustache

/// A template part that only interpolates variables (no sections, partials, lambdas or
/// transforms), rendered once per job with swift-mustache into text segments and variable slots;
/// rendering an item then only fills the slots.
///
/// Rendering through swift-mustache for every item spends most of its time in dynamic casts on
/// the context; a campaign's templates are usually flat, so this turns per-item rendering into a
/// concatenation. Templates with sections fall back to swift-mustache for every item.
struct FlatTemplate: Sendable {
    enum Segment: Sendable {
        case text([UInt8])
        /// A value: `slot` indexes `paths`, so a variable used many times is looked up once.
        case variable(slot: Int, escaped: Bool)
    }

    let segments: [Segment]
    let paths: [[String]]
    /// The part's escaping (HTML, JSON string, URL component or none).
    let escape: @Sendable (String) -> String

    private static let open = "\u{E000}"
    private static let close = "\u{E001}"

    /// Stands for every variable: renders as a marker naming its path. The `"` inside shows
    /// whether the part escaped it (every escaping here changes a `"`) or not.
    private struct Placeholder: MustacheParent, MustacheCustomRenderable {
        let path: String
        func child(named: String) -> Any? { Placeholder(path: path.isEmpty ? named : path + "." + named) }
        var renderText: String { FlatTemplate.open + path + "\"" + FlatTemplate.close }
        var isNull: Bool { false }
    }

    /// Nil when the source uses anything but plain variables.
    /// - Parameter escape: what the part's content type does to a value, as swift-mustache would.
    init?(source: String, template: MustacheTemplate, escape: @escaping @Sendable (String) -> String) {
        guard Self.isFlat(source) else { return nil }
        self.escape = escape
        let escapedQuote = escape("\"")
        let rendered = template.render(Placeholder(path: ""))
        // A part that escapes every character it does not know (URL) escapes the markers too.
        let marks = [(Self.open, Self.close), (escape(Self.open), escape(Self.close))]
        var segments: [Segment] = []
        var paths: [[String]] = []
        var rest = Substring(rendered)
        while true {
            let found = marks.compactMap { mark in rest.range(of: mark.0).map { ($0, mark.1) } }.min { $0.0.lowerBound < $1.0.lowerBound }
            guard let (start, closeMark) = found else { break }
            if start.lowerBound > rest.startIndex {
                segments.append(.text(Array(rest[..<start.lowerBound].utf8)))
            }
            guard let end = rest[start.upperBound...].range(of: closeMark) else { return nil }
            var inner = rest[start.upperBound..<end.lowerBound]
            let escaped: Bool
            if escapedQuote != "\"", inner.hasSuffix(escapedQuote) {
                escaped = true
                inner = inner.dropLast(escapedQuote.count)
            } else if inner.hasSuffix("\"") {
                escaped = false
                inner = inner.dropLast()
            } else {
                return nil
            }
            let path = inner.split(separator: ".").map(String.init)
            if let slot = paths.firstIndex(of: path) {
                segments.append(.variable(slot: slot, escaped: escaped))
            } else {
                paths.append(path)
                segments.append(.variable(slot: paths.count - 1, escaped: escaped))
            }
            rest = rest[end.upperBound...]
        }
        if !rest.isEmpty { segments.append(.text(Array(rest.utf8))) }
        self.segments = segments
        self.paths = paths
    }

    /// Whether every tag is `{{name}}`, `{{{name}}}`, `{{&name}}` or a comment, with plain names.
    static func isFlat(_ source: String) -> Bool {
        if source.contains(open) || source.contains(close) { return false }
        var rest = Substring(source)
        var first = true
        while let tag = rest.range(of: "{{") {
            var body = rest[tag.upperBound...]
            guard let end = body.range(of: "}}") else { return false }
            let inner = body[..<end.lowerBound].trimmingCharacters(in: .whitespaces)
            body = body[end.upperBound...]
            defer { first = false }
            if inner.hasPrefix("%") && first && inner.contains("CONTENT_TYPE") { rest = body; continue }
            if inner.hasPrefix("!") { rest = body; continue }
            var name = Substring(inner)
            if name.hasPrefix("{") { name = name.dropFirst(); if body.hasPrefix("}") { body = body.dropFirst() } }
            if name.hasPrefix("&") { name = name.dropFirst() }
            let trimmed = name.trimmingCharacters(in: .whitespaces)
            guard !trimmed.isEmpty, trimmed != ".", !trimmed.hasPrefix("."),
                  trimmed.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" || $0 == "-" || $0 == "." })
            else { return false }
            rest = body
        }
        return true
    }

    /// Fills the slots from `context` as swift-mustache would: missing values render as nothing,
    /// others as `String(describing:)`, HTML-escaped where the part escapes.
    func render(_ context: [String: Any]) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(segments.reduce(0) { if case .text(let t) = $1 { $0 + t.count } else { $0 + 16 } })
        var raw = [String?](repeating: nil, count: paths.count)
        var escapedValues = [String?](repeating: nil, count: paths.count)
        var looked = [Bool](repeating: false, count: paths.count)
        for segment in segments {
            switch segment {
            case .text(let bytes):
                out += bytes
            case .variable(let slot, let escaped):
                if !looked[slot] {
                    looked[slot] = true
                    raw[slot] = Self.lookup(paths[slot], in: context).map { $0 as? String ?? String(describing: $0) }
                }
                guard let text = raw[slot] else { continue }
                if escaped {
                    if escapedValues[slot] == nil { escapedValues[slot] = escape(text) }
                    out += escapedValues[slot]!.utf8
                } else {
                    out += text.utf8
                }
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    private static func lookup(_ path: [String], in context: [String: Any]) -> Any? {
        var current: Any? = context
        for name in path {
            guard let dictionary = current as? [String: Any] else { return nil }
            current = dictionary[name]
        }
        return current
    }
}
