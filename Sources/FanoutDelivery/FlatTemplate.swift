import Foundation
import Mustache

/// A template part that only interpolates variables (no sections, partials, lambdas or
/// transforms), rendered once per job with swift-mustache into text segments and variable slots;
/// rendering an item then only fills the slots.
///
/// Rendering through swift-mustache for every item spends most of its time in dynamic casts on
/// the context; a campaign's templates are usually flat, so this turns per-item rendering into a
/// concatenation of bytes. Templates with sections fall back to swift-mustache for every item.
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
    /// The bytes of the text segments, to size the output once.
    private let textSize: Int

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
        let escapedQuote = Array(escape("\"").utf8)
        let rendered = Array(template.render(Placeholder(path: "")).utf8)
        // A part that escapes every character it does not know (URL) escapes the markers too.
        let marks = [(Self.open, Self.close), (escape(Self.open), escape(Self.close))].map {
            (Array($0.0.utf8), Array($0.1.utf8))
        }
        var segments: [Segment] = []
        var paths: [[String]] = []
        var rest = rendered[...]
        while true {
            guard let (start, closeMark) = Self.firstMark(marks, in: rest) else { break }
            if start.lowerBound > rest.startIndex {
                segments.append(.text(Array(rest[..<start.lowerBound])))
            }
            guard let end = rest[start.upperBound...].firstRange(of: closeMark) else { return nil }
            var inner = rest[start.upperBound..<end.lowerBound]
            let escaped: Bool
            if escapedQuote != [UInt8(ascii: "\"")], inner.suffix(escapedQuote.count).elementsEqual(escapedQuote) {
                escaped = true
                inner = inner.dropLast(escapedQuote.count)
            } else if inner.last == UInt8(ascii: "\"") {
                escaped = false
                inner = inner.dropLast()
            } else {
                return nil
            }
            let path = inner.split(separator: UInt8(ascii: ".")).map { String(decoding: $0, as: UTF8.self) }
            if let slot = paths.firstIndex(of: path) {
                segments.append(.variable(slot: slot, escaped: escaped))
            } else {
                paths.append(path)
                segments.append(.variable(slot: paths.count - 1, escaped: escaped))
            }
            rest = rest[end.upperBound...]
        }
        if !rest.isEmpty { segments.append(.text(Array(rest))) }
        self.segments = segments
        self.paths = paths
        self.textSize = segments.reduce(0) { if case .text(let t) = $1 { $0 + t.count } else { $0 } }
    }

    /// The first opening marker in `text`, and the closing marker that goes with it.
    private static func firstMark(_ marks: [([UInt8], [UInt8])], in text: ArraySlice<UInt8>) -> (Range<Int>, [UInt8])? {
        var index = text.startIndex
        while index < text.endIndex {
            for (open, close) in marks where text[index] == open[0] && text[index...].starts(with: open) {
                return (index..<index + open.count, close)
            }
            index += 1
        }
        return nil
    }

    /// Whether every tag is `{{name}}`, `{{{name}}}`, `{{&name}}` or a comment, with plain names.
    static func isFlat(_ source: String) -> Bool {
        if source.contains(open) || source.contains(close) { return false }
        let bytes = Array(source.utf8)
        let tagOpen = Array("{{".utf8), tagClose = Array("}}".utf8)
        func isBlank(_ byte: UInt8) -> Bool { byte == 32 || byte == 9 }
        var rest = bytes[...]
        var first = true
        while let tag = rest.firstRange(of: tagOpen) {
            var body = rest[tag.upperBound...]
            guard let end = body.firstRange(of: tagClose) else { return false }
            var inner = body[..<end.lowerBound]
            while let byte = inner.first, isBlank(byte) { inner = inner.dropFirst() }
            while let byte = inner.last, isBlank(byte) { inner = inner.dropLast() }
            body = body[end.upperBound...]
            defer { first = false }
            if inner.first == UInt8(ascii: "%") && first && inner.firstRange(of: Array("CONTENT_TYPE".utf8)) != nil {
                rest = body; continue
            }
            if inner.first == UInt8(ascii: "!") { rest = body; continue }
            var name = inner
            if name.first == UInt8(ascii: "{") {
                name = name.dropFirst(); if body.first == UInt8(ascii: "}") { body = body.dropFirst() }
            }
            if name.first == UInt8(ascii: "&") { name = name.dropFirst() }
            while let byte = name.first, isBlank(byte) { name = name.dropFirst() }
            let trimmed = String(decoding: name, as: UTF8.self)
            guard !trimmed.isEmpty, !trimmed.hasPrefix("."),
                trimmed.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_" || $0 == "-" || $0 == ".") }
                )
            else { return false }
            rest = body
        }
        return true
    }

    /// Fills the slots from `context` as swift-mustache would: missing values render as nothing,
    /// others as `String(describing:)`, escaped where the part escapes.
    func render(_ context: [String: Any]) -> String {
        String(decoding: renderBytes(context), as: UTF8.self)
    }

    /// `render(_:)` as UTF-8 bytes.
    func renderBytes(_ context: [String: Any]) -> [UInt8] {
        renderBytes { Self.value(at: $0, in: context) }
    }

    /// Renders with `value(path)` giving each variable's value (nil for none).
    func renderBytes(_ value: (_ path: [String]) -> Any?) -> [UInt8] {
        // Each slot's bytes as they are written (escaped or not), then the output sized once.
        var slots = [(text: String?, raw: [UInt8]?, escaped: [UInt8]?)](repeating: (nil, nil, nil), count: paths.count)
        for (slot, path) in paths.enumerated() {
            switch value(path) {
            case nil: continue
            case let text as String: slots[slot].text = text
            case let number as Int64: slots[slot].text = String(number)
            case let number as UInt64: slots[slot].text = String(number)
            case let other?: slots[slot].text = String(describing: other)
            }
        }
        var size = textSize
        for segment in segments {
            guard case .variable(let slot, let isEscaped) = segment, let text = slots[slot].text else { continue }
            if isEscaped {
                if slots[slot].escaped == nil { slots[slot].escaped = Array(escape(text).utf8) }
                size += slots[slot].escaped!.count
            } else {
                if slots[slot].raw == nil { slots[slot].raw = Array(text.utf8) }
                size += slots[slot].raw!.count
            }
        }
        return [UInt8](unsafeUninitializedCapacity: size) { buffer, written in
            guard let base = buffer.baseAddress else { return }
            var at = base
            func write(_ bytes: [UInt8]) {
                bytes.withUnsafeBufferPointer { source in
                    guard let start = source.baseAddress else { return }
                    at.initialize(from: start, count: source.count)
                    at += source.count
                }
            }
            for segment in segments {
                switch segment {
                case .text(let bytes):
                    write(bytes)
                case .variable(let slot, let isEscaped):
                    if let bytes = isEscaped ? slots[slot].escaped : slots[slot].raw { write(bytes) }
                }
            }
            written = at - base
        }
    }

    /// What `context` holds at `path` (`a.b` is key `b` of the object at key `a`), as
    /// swift-mustache finds it; nil where it holds nothing.
    static func value(at path: [String], in context: [String: Any]) -> Any? {
        guard let first = path.first, var current = context[first] else { return nil }
        for name in path.dropFirst() {
            guard let dictionary = current as? [String: Any], let next = dictionary[name] else { return nil }
            current = next
        }
        return current
    }
}
