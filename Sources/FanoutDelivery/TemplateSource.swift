import FanoutCore
import Foundation
import Mustache

/// One parsed template file (or part of one), with its fast path when it only interpolates.
struct TemplatePart: Sendable {
    let template: MustacheTemplate
    let flat: FlatTemplate?

    func render(_ context: [String: Any]) -> String {
        flat?.render(context) ?? template.render(context)
    }

    func renderBytes(_ context: [String: Any]) -> [UInt8] {
        renderBytes {
            FlatTemplate.value(at: $0, in: context)
        } dictionary: {
            context
        }
    }

    /// Through the fast path with `value`, or through swift-mustache with `dictionary()`.
    func renderBytes(_ value: ([String]) -> Any?, dictionary: () -> [String: Any]) -> [UInt8] {
        flat.map { $0.renderBytes(value) } ?? Array(template.render(dictionary()).utf8)
    }
}

/// What email and wallet templates share: their names, reading their files, and compiling a
/// part with the escaping of its content type. Each kind adds only its own layout.
enum TemplateSource {
    /// The content types a part is compiled for, each with its one escaping function.
    enum Content: String {
        /// No escaping (subjects, plain text, headers).
        case text = "TEXT"
        /// Every value HTML-escaped (`HTMLText.escaped`), through every Mustache path.
        case html = "FANOUT_HTML"
        /// Values escaped for the inside of a JSON string.
        case json = "JSON"
        /// Values percent-encoded as a URL component.
        case url = "URL"

        var escape: @Sendable (String) -> String {
            switch self {
            case .text: { $0 }
            case .html: { HTMLText.escaped($0) }
            case .json: { JSONStringContentType().escapeText($0) }
            case .url: { URLComponentContentType().escapeText($0) }
            }
        }
    }

    /// Throws unless `name` is a plain template name: no folder, no leading dot.
    static func checkName(_ name: String) throws(TemplateError) {
        guard !name.isEmpty, !name.contains("/"), !name.contains("\\"), !name.contains("\0"), !name.hasPrefix(".")
        else {
            throw TemplateError(
                template: name, message: "not a template name (letters, digits, '-', '_' and inner dots only)")
        }
    }

    /// The text of `folder/relative`; nil when there is no such file. A file that is there but
    /// cannot be read, or is not UTF-8, is an error naming it (never taken for "absent").
    static func read(_ relative: String, in folder: String, template: String) throws(TemplateError) -> String? {
        let path = (folder as NSString).appendingPathComponent(relative)
        guard let data = FileManager.default.contents(atPath: path) else {
            // Absent only when nothing is there: a dangling link or a folder of that name is a
            // mistake to show, not a part to leave out.
            var status = stat()
            if lstat(path, &status) != 0 && errno == ENOENT { return nil }
            let why = access(path, R_OK) != 0 ? String(cString: strerror(errno)) : "not a readable file"
            throw TemplateError(template: template, message: "\(relative) cannot be read: \(why)")
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw TemplateError(template: template, message: "\(relative) is not UTF-8 text")
        }
        return text
    }

    /// Compiles `text` for `content`; `place` names it in errors ("email/card/html.mustache",
    /// "wallet/card.http.mustache: the body").
    static func compile(_ text: String, _ content: Content, template: String, place: String) throws(TemplateError)
        -> TemplatePart
    {
        _ = ContentTypes.registered
        let full = "{{% CONTENT_TYPE: \(content.rawValue) }}" + text
        do {
            let parsed = try MustacheTemplate(string: full)
            return TemplatePart(
                template: parsed, flat: FlatTemplate(source: full, template: parsed, escape: content.escape))
        } catch let error as MustacheTemplate.ParserError {
            let at = "line \(error.context.lineNumber), column \(error.context.columnNumber)"
            throw TemplateError(template: template, message: "\(place) does not parse: \(error.error) at \(at)")
        } catch {
            throw TemplateError(template: template, message: "\(place) does not parse: \(error)")
        }
    }
}
