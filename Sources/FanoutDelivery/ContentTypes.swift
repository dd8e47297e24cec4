import FanoutCore
import Mustache

/// The escaping of each place a template value can land, registered once with swift-mustache so
/// the slow path (sections, inverted sections) escapes exactly as the fast path does.
enum ContentTypes {
    /// HTML parts: `HTMLText.escaped`, byte by byte. swift-mustache's own HTML escaping compares
    /// Characters, so a quote followed by a combining mark (one Character) got through unescaped.
    static let registered: Void = {
        MustacheContentTypes.register(HTMLEscapedContentType(), named: TemplateSource.Content.html.rawValue)
        MustacheContentTypes.register(JSONStringContentType(), named: TemplateSource.Content.json.rawValue)
        MustacheContentTypes.register(URLComponentContentType(), named: TemplateSource.Content.url.rawValue)
    }()
}

/// Escapes a value for HTML text or a quoted attribute (`< > & " '`).
struct HTMLEscapedContentType: MustacheContentType {
    func escapeText(_ text: String) -> String { HTMLText.escaped(text) }
}
