import FanoutCore
import Mustache

/// The escaping of each place a template value can land, registered once with swift-mustache so
/// the slow path (sections, inverted sections) escapes exactly as the fast path does.
enum ContentTypes {
    /// HTML parts: `HTMLText.escaped`, byte by byte. swift-mustache's own HTML escaping compares
    /// Characters, so a quote followed by a combining mark (one Character) got through unescaped.
    static let html = "FANOUT_HTML"
    static let json = "JSON"
    static let url = "URL"

    static let registered: Void = {
        MustacheContentTypes.register(HTMLEscapedContentType(), named: html)
        MustacheContentTypes.register(JSONStringContentType(), named: json)
        MustacheContentTypes.register(URLComponentContentType(), named: url)
    }()
}

/// Escapes a value for HTML text or a quoted attribute (`< > & " '`).
struct HTMLEscapedContentType: MustacheContentType {
    func escapeText(_ text: String) -> String { HTMLText.escaped(text) }
}
