import FanoutCore
import Foundation
import Mustache

/// Why a template cannot be used: which template, which file, and what is wrong with it.
public struct TemplateError: Error, Sendable, CustomStringConvertible {
    public var template: String
    public var message: String

    public init(template: String, message: String) {
        self.template = template
        self.message = message
    }

    public var description: String { "template '\(template)': \(message)" }
}

/// The parts of one email after rendering; the bodies as UTF-8 bytes, as they go into the message.
public struct RenderedEmail: Sendable, Hashable {
    public var subject: String
    public var htmlBytes: [UInt8]?
    public var textBytes: [UInt8]?

    public var html: String? { htmlBytes.map { String(decoding: $0, as: UTF8.self) } }
    public var text: String? { textBytes.map { String(decoding: $0, as: UTF8.self) } }
}

/// An email template: `email/NAME/subject.mustache` plus `html.mustache` and/or `text.mustache`,
/// parsed once when loaded so that a broken template fails before anything is sent.
///
/// Values are escaped for their part: HTML-escaped in html, not at all in text and subject. The
/// subject is rendered onto one line (no header can be made through it).
public struct EmailTemplate: Sendable {
    public let name: String
    private let subject: Part
    private let html: Part?
    private let text: Part?

    /// One parsed file, with its fast path when it only interpolates variables.
    struct Part: Sendable {
        let template: MustacheTemplate
        let flat: FlatTemplate?

        func render(_ context: [String: Any]) -> String {
            flat?.render(context) ?? template.render(context)
        }

        func renderBytes(_ context: [String: Any]) -> [UInt8] {
            renderBytes { FlatTemplate.value(at: $0, in: context) } dictionary: { context }
        }

        /// Through the fast path with `value`, or through swift-mustache with `dictionary()`.
        func renderBytes(_ value: ([String]) -> Any?, dictionary: () -> [String: Any]) -> [UInt8] {
            flat.map { $0.renderBytes(value) } ?? Array(template.render(dictionary()).utf8)
        }
    }

    /// Loads and parses the template named `name` from `folder/email/name/`.
    /// - Throws: `TemplateError` naming the missing or unparsable file.
    public static func load(name: String, folder: String) throws(TemplateError) -> EmailTemplate {
        guard !name.isEmpty, !name.contains("/"), !name.contains("\\"), !name.contains("\0"), name != ".", name != "..", !name.hasPrefix(".") else {
            throw TemplateError(template: name, message: "not a template name (letters, digits, '-', '_' and inner dots only)")
        }
        let directory = (folder as NSString).appendingPathComponent("email/\(name)")
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw TemplateError(template: name, message: "no such template: \(directory) does not exist")
        }
        _ = ContentTypes.registered
        func part(_ file: String, contentType: String) throws(TemplateError) -> Part? {
            let path = (directory as NSString).appendingPathComponent(file)
            guard let data = FileManager.default.contents(atPath: path) else { return nil }
            guard let source = String(data: data, encoding: .utf8) else {
                throw TemplateError(template: name, message: "email/\(name)/\(file) is not UTF-8 text")
            }
            do {
                let full = "{{% CONTENT_TYPE: \(contentType) }}" + source
                let template = try MustacheTemplate(string: full)
                let escape: @Sendable (String) -> String
                if contentType == ContentTypes.html {
                    escape = { HTMLText.escaped($0) }
                } else {
                    escape = { $0 }
                }
                return Part(template: template, flat: FlatTemplate(source: full, template: template, escape: escape))
            } catch let error as MustacheTemplate.ParserError {
                throw TemplateError(template: name, message: "email/\(name)/\(file) does not parse: \(error.error) at line \(error.context.lineNumber), column \(error.context.columnNumber)")
            } catch {
                throw TemplateError(template: name, message: "email/\(name)/\(file) does not parse: \(error)")
            }
        }
        guard let subject = try part("subject.mustache", contentType: "TEXT") else {
            throw TemplateError(template: name, message: "email/\(name)/subject.mustache is missing")
        }
        let html = try part("html.mustache", contentType: ContentTypes.html)
        let text = try part("text.mustache", contentType: "TEXT")
        guard html != nil || text != nil else {
            throw TemplateError(template: name, message: "email/\(name) has neither html.mustache nor text.mustache")
        }
        return EmailTemplate(name: name, subject: subject, html: html, text: text)
    }

    /// Renders every part with `context` (the item's variables).
    public func render(_ context: [String: Any]) -> RenderedEmail {
        RenderedEmail(
            subject: Self.oneLine(subject.render(context)),
            htmlBytes: html?.renderBytes(context),
            textBytes: text?.renderBytes(context)
        )
    }

    /// Renders every part for one item; parts that only interpolate look the variables up
    /// directly, the others get them as one dictionary.
    func render(_ variables: ItemVariables) -> RenderedEmail {
        var dictionary: [String: Any]?
        func bytes(_ part: Part) -> [UInt8] {
            part.renderBytes(variables.value(at:)) {
                if dictionary == nil { dictionary = variables.dictionary }
                return dictionary!
            }
        }
        return RenderedEmail(
            subject: Self.oneLine(String(decoding: bytes(subject), as: UTF8.self)),
            htmlBytes: html.map(bytes),
            textBytes: text.map(bytes)
        )
    }

    /// Every run of CR, LF, TAB, other controls and spaces becomes one space, and the ends are
    /// trimmed: a subject is one line.
    static func oneLine(_ raw: String) -> String {
        // The common case, printable ASCII with single inner spaces, is already one line.
        var previous: UInt8 = 32
        var isOneLine = true
        for byte in raw.utf8 {
            if byte < 0x20 || byte >= 0x7F || (byte == 32 && previous == 32) { isOneLine = false; break }
            previous = byte
        }
        if isOneLine && previous != 32 { return raw }
        var line = ""
        var lastWasSpace = true
        for scalar in raw.unicodeScalars {
            let isBreak = scalar.value < 0x20 || scalar.value == 0x7F || scalar == "\u{2028}" || scalar == "\u{2029}" || scalar == " "
            if isBreak {
                if !lastWasSpace { line.unicodeScalars.append(" ") }
                lastWasSpace = true
            } else {
                line.unicodeScalars.append(scalar)
                lastWasSpace = false
            }
        }
        return line.trimmingCharacters(in: .whitespaces)
    }
}
