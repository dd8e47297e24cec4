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
    private let subject: TemplatePart
    private let html: TemplatePart?
    private let text: TemplatePart?

    /// Loads and parses the template named `name` from `folder/email/name/`.
    /// - Throws: `TemplateError` naming the missing or unparsable file.
    public static func load(name: String, folder: String) throws(TemplateError) -> EmailTemplate {
        try TemplateSource.checkName(name)
        let directory = (folder as NSString).appendingPathComponent("email/\(name)")
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw TemplateError(template: name, message: "no such template: \(directory) does not exist")
        }
        func part(_ file: String, _ content: TemplateSource.Content) throws(TemplateError) -> TemplatePart? {
            let relative = "email/\(name)/\(file)"
            guard let source = try TemplateSource.read(relative, in: folder, template: name) else { return nil }
            return try TemplateSource.compile(source, content, template: name, place: relative)
        }
        guard let subject = try part("subject.mustache", .text) else {
            throw TemplateError(template: name, message: "email/\(name)/subject.mustache is missing")
        }
        let html = try part("html.mustache", .html)
        let text = try part("text.mustache", .text)
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
        func bytes(_ part: TemplatePart) -> [UInt8] {
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
            let isBreak =
                scalar.value < 0x20 || scalar.value == 0x7F || scalar == "\u{2028}" || scalar == "\u{2029}"
                || scalar == " "
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
