import Curl
import FanoutCore
import Foundation
import Mustache

/// The rendered request of one item.
public struct RenderedRequest: Sendable {
    public var method: String
    public var url: String
    public var headers: [(name: String, value: String)]
    public var body: String
}

/// Who signs a wallet template's requests: Fanout adds the credential itself (`# @auth google`:
/// an OAuth access token; `# @auth apns`: the TLS client certificate), never the template.
public enum WalletAuth: String, Sendable, CaseIterable {
    case google, apns
}

/// A wallet template file: `wallet/NAME.http.mustache`, or `wallet/NAME.PLATFORM.http.mustache`
/// for the items of one platform. An optional first line `# @auth google|apns` names the
/// credential; then one request in the common `.http` form, or two separated by a `###` line:
/// an update, and the insert sent when the update answers 404 (the REST Client convention).
public struct WalletTemplate: Sendable {
    public let name: String
    public let auth: WalletAuth?
    /// The request; for an update/insert pair, the update first.
    let requests: [WalletRequestTemplate]
    /// The file, relative to the templates folder.
    public let relative: String

    /// Whether the file holds an insert to send when the update answers 404.
    public var hasInsert: Bool { requests.count > 1 }

    /// `wallet/NAME.http.mustache`; an error when it does not exist.
    public static func load(name: String, folder: String) throws(TemplateError) -> WalletTemplate {
        guard let template = try read(name: name, platform: nil, folder: folder) else {
            let path = (folder as NSString).appendingPathComponent("wallet/\(name).http.mustache")
            throw TemplateError(template: name, message: "no such template: \(path) does not exist")
        }
        return template
    }

    /// `wallet/NAME.PLATFORM.http.mustache` (or `wallet/NAME.http.mustache` without a platform);
    /// nil when that file does not exist.
    public static func read(name: String, platform: String?, folder: String) throws(TemplateError) -> WalletTemplate? {
        try TemplateSource.checkName(name)
        let relative = "wallet/\(name)\(platform.map { ".\($0)" } ?? "").http.mustache"
        guard let source = try TemplateSource.read(relative, in: folder, template: name) else { return nil }
        var lines = source.replacingOccurrences(of: "\r\n", with: "\n").components(separatedBy: "\n")[...]
        var auth: WalletAuth?
        if let first = lines.first?.trimmingCharacters(in: .whitespaces), first.hasPrefix("#"),
            first.dropFirst().trimmingCharacters(in: .whitespaces).hasPrefix("@auth")
        {
            let value = first.dropFirst().trimmingCharacters(in: .whitespaces).dropFirst("@auth".count)
                .trimmingCharacters(in: .whitespaces)
            guard let named = WalletAuth(rawValue: value.lowercased()) else {
                throw TemplateError(
                    template: name,
                    message: "\(relative): '# @auth \(value)' names no credential Fanout knows (google or apns)")
            }
            auth = named
            lines = lines.dropFirst()
        }
        var blocks: [ArraySlice<String>] = []
        var block: [String] = []
        for line in lines {
            if line.trimmingCharacters(in: .whitespaces).hasPrefix("###") {
                blocks.append(block[...])
                block = []
            } else {
                block.append(line)
            }
        }
        blocks.append(block[...])
        blocks.removeAll { $0.allSatisfy { $0.trimmingCharacters(in: .whitespaces).isEmpty } }
        guard (1...2).contains(blocks.count) else {
            throw TemplateError(
                template: name,
                message: blocks.isEmpty
                    ? "\(relative) has no request line (METHOD URL)"
                    : "\(relative) holds \(blocks.count) requests: one, or an update and an insert separated by ###")
        }
        if blocks.count > 1 && auth != .google {
            throw TemplateError(
                template: name,
                message: "\(relative) holds two requests: only a Google template ('# @auth google') has an update and "
                    + "an insert")
        }
        var requests: [WalletRequestTemplate] = []
        for (index, block) in blocks.enumerated() {
            let place = blocks.count == 1 ? relative : "\(relative) (\(index == 0 ? "update" : "insert"))"
            requests.append(try WalletRequestTemplate.parse(block, name: name, place: place))
        }
        return WalletTemplate(name: name, auth: auth, requests: requests, relative: relative)
    }

    /// Why no item of this template could get a valid URL with these settings, naming the
    /// setting or the template; nil when every request's URL start is fine.
    public func urlProblem(environment: [String: String]) -> String? {
        requests.lazy.compactMap { $0.urlProblem(environment: environment) }.first
    }

    /// Renders the request (and the insert, when the file has one) for one item.
    public func render(_ context: [String: Any]) -> Result<[RenderedRequest], ItemRejection> {
        var rendered: [RenderedRequest] = []
        for request in requests {
            switch request.render(context) {
            case .success(let one): rendered.append(one)
            case .failure(let rejection): return .failure(rejection)
            }
        }
        return .success(rendered)
    }
}

/// One request of a wallet template in the common `.http` form: `METHOD URL`, header lines, a
/// blank line, an optional body. `#` comment lines before the request line are skipped.
///
/// Each part is its own mustache template with the escaping its place needs, so no item can
/// change the shape of a request: values in the URL are percent-encoded (`{{{x}}}` inserts a
/// trusted setting raw, e.g. a base URL), header values are taken as text and a line break in one
/// fails the item, values in a JSON body are JSON-string-escaped, and the rendered JSON must parse.
struct WalletRequestTemplate: Sendable {
    let name: String
    let method: String
    private let url: TemplatePart
    private let headers: [(name: String, value: TemplatePart)]
    private let body: TemplatePart?
    let isJSON: Bool
    /// What every item's URL starts with, and where the request came from.
    private let urlStart: URLStart
    private let relative: String

    static func parse(_ block: ArraySlice<String>, name: String, place relative: String) throws(TemplateError)
        -> WalletRequestTemplate
    {
        var lines = block
        while let first = lines.first,
            first.trimmingCharacters(in: .whitespaces).isEmpty || first.hasPrefix("#") || first.hasPrefix("//")
        {
            lines = lines.dropFirst()
        }
        guard let requestLine = lines.first else {
            throw TemplateError(template: name, message: "\(relative) has no request line (METHOD URL)")
        }
        lines = lines.dropFirst()
        let parts = requestLine.split(separator: " ", maxSplits: 1).map(String.init)
        let methods: Set<String> = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
        guard parts.count == 2, methods.contains(parts[0].uppercased()) else {
            throw TemplateError(
                template: name,
                message:
                    "\(relative): the first line must be METHOD URL, e.g. POST https://api.example.com/cards, "
                    + "not '\(requestLine)'"
            )
        }
        func compile(_ text: String, _ content: TemplateSource.Content, _ what: String) throws(TemplateError)
            -> TemplatePart
        {
            try TemplateSource.compile(text, content, template: name, place: "\(relative): the \(what)")
        }
        let urlTags = URLStart.tags(
            parts[1].trimmingCharacters(in: .whitespaces).replacingOccurrences(of: " HTTP/1.1", with: ""))
        let url = try compile(URLStart.settingsVerbatim(urlTags), .url, "URL")
        var headers: [(String, TemplatePart)] = []
        var isJSON = false
        while let line = lines.first, !line.trimmingCharacters(in: .whitespaces).isEmpty {
            lines = lines.dropFirst()
            guard let colon = line.firstIndex(of: ":") else {
                throw TemplateError(template: name, message: "\(relative): '\(line)' is not a header (Name: value)")
            }
            let headerName = line[..<colon].trimmingCharacters(in: .whitespaces)
            let value = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            if headerName.lowercased() == "content-type" && value.lowercased().contains("json") { isJSON = true }
            headers.append((headerName, try compile(value, .text, "header \(headerName)")))
        }
        let bodyText = lines.dropFirst().joined(separator: "\n").trimmingCharacters(in: .whitespacesAndNewlines)
        if !bodyText.isEmpty && (bodyText.hasPrefix("{") || bodyText.hasPrefix("["))
            && !headers.contains(where: { $0.0.lowercased() == "content-type" })
        {
            isJSON = true
            headers.append(("Content-Type", try compile("application/json", .text, "header")))
        }
        let body = bodyText.isEmpty ? nil : try compile(bodyText, isJSON ? .json : .text, "body")
        return WalletRequestTemplate(
            name: name, method: parts[0].uppercased(), url: url, headers: headers, body: body, isJSON: isJSON,
            urlStart: URLStart(urlTags), relative: relative
        )
    }

    /// Why no item of this template could get a valid URL with these settings, naming the
    /// setting or the template; nil when the URL's start is fine (or depends on each item).
    func urlProblem(environment: [String: String]) -> String? {
        let start = urlStart.render(environment)
        let settings = urlStart.settings
        if start.hasPrefix("http://") || start.hasPrefix("https://") {
            guard !start.utf8.contains(where: { $0 <= 0x20 || $0 == 0x7F }) else {
                let described = Self.describe(settings, environment)
                return "\(relative): the request URL starts with a space or control character (\(described))"
            }
            return nil
        }
        // Shorter than "https://": it may still become one once an item's value follows.
        if !urlStart.isWholeURL && ("https://".hasPrefix(start) || "http://".hasPrefix(start)) { return nil }
        let missing = settings.filter { (environment[$0] ?? "").isEmpty }
        if let first = missing.first {
            return "\(relative): the request URL needs the setting \(first), which is not set"
        }
        if !settings.isEmpty {
            let described = Self.describe(settings, environment)
            return "\(relative): the request URL does not start with http:// or https:// with \(described)"
        }
        return "\(relative): the request URL does not start with http:// or https://: '\(excerpt(start, limit: 80))'"
    }

    private static func describe(_ settings: [String], _ environment: [String: String]) -> String {
        settings.map { "\($0)=\(excerpt(environment[$0] ?? "", limit: 80))" }.joined(separator: ", ")
    }

    /// Renders the request for one item; a reason when the result cannot be sent as it is.
    func render(_ context: [String: Any]) -> Result<RenderedRequest, ItemRejection> {
        let url = self.url.render(context)
        guard url.hasPrefix("http://") || url.hasPrefix("https://") else {
            return .failure(ItemRejection(reason: "the rendered URL is not http(s): \(excerpt(url, limit: 80))"))
        }
        // libcurl refuses such a URL as malformed, which would read as the settings' fault for
        // every item; when a raw value ({{{x}}}) put it there, it is this item's.
        guard !url.utf8.contains(where: { $0 <= 0x20 || $0 == 0x7F }) else {
            return .failure(
                ItemRejection(
                    reason: "the rendered URL contains a space or a control character: \(excerpt(url, limit: 80))"))
        }
        var headers: [(name: String, value: String)] = []
        for (headerName, template) in self.headers {
            let value = template.render(context)
            if value.unicodeScalars.contains(where: { $0 == "\r" || $0 == "\n" || $0 == "\0" }) {
                return .failure(ItemRejection(reason: "the \(headerName) header would contain a line break: refused"))
            }
            headers.append((headerName, value))
        }
        let body = self.body?.render(context) ?? ""
        if isJSON && !body.isEmpty {
            do {
                _ = try JSONParser.parse(body)
            } catch {
                return .failure(
                    ItemRejection(reason: "the rendered body is not valid JSON (\(error)): \(excerpt(body, limit: 80))")
                )
            }
        }
        return .success(RenderedRequest(method: method, url: url, headers: headers, body: body))
    }
}

/// The start of a request URL that every item shares: its literal text and settings up to the
/// first item value, found once when the template loads.
struct URLStart: Sendable {
    /// A piece of a URL source: literal text, or a `{{…}}` tag with the name inside it.
    enum Piece: Equatable {
        case text(String)
        case tag(source: String, name: String)
    }

    /// The setting names (after `env.`) in the start, in order.
    let settings: [String]
    /// Whether the URL holds no item value at all (then its start is the whole URL).
    let isWholeURL: Bool
    private let template: MustacheTemplate?

    init(_ pieces: [Piece]) {
        let start = pieces.prefix { piece in
            if case .tag(_, let name) = piece { return name.hasPrefix("env.") }
            return true
        }
        isWholeURL = start.count == pieces.count
        settings = start.compactMap { piece in
            if case .tag(_, let name) = piece { return String(name.dropFirst(4)) }
            return nil
        }
        template = try? MustacheTemplate(
            string: "{{% CONTENT_TYPE: \(TemplateSource.Content.url.rawValue) }}" + Self.settingsVerbatim(Array(start)))
    }

    /// The start rendered with these settings.
    func render(_ environment: [String: String]) -> String {
        template?.render(["env": environment] as [String: Any]) ?? ""
    }

    /// Splits a URL source into literal text and tags (`{{x}}`, `{{{x}}}`, `{{&x}}`).
    static func tags(_ source: String) -> [Piece] {
        var pieces: [Piece] = []
        var rest = source[...]
        while let open = rest.range(of: "{{") {
            if open.lowerBound > rest.startIndex { pieces.append(.text(String(rest[..<open.lowerBound]))) }
            let afterOpen = rest[open.upperBound...]
            let close = afterOpen.hasPrefix("{") ? "}}}" : "}}"
            guard let end = afterOpen.range(of: close) else {
                pieces.append(.text(String(rest[open.lowerBound...])))
                return pieces
            }
            let name = afterOpen[..<end.lowerBound].trimmingCharacters(
                in: CharacterSet(charactersIn: "{&").union(.whitespaces))
            pieces.append(.tag(source: String(rest[open.lowerBound..<end.upperBound]), name: name))
            rest = afterOpen[end.upperBound...]
        }
        if !rest.isEmpty { pieces.append(.text(String(rest))) }
        return pieces
    }

    /// The source again, with every setting as `{{{env.X}}}`: `{{env.X}}` in the URL inserts the
    /// setting as it is (settings are trusted: a base URL keeps its `://` and `/`); item values
    /// stay percent-encoded.
    static func settingsVerbatim(_ pieces: [Piece]) -> String {
        pieces.map { piece in
            switch piece {
            case .text(let text): text
            case .tag(let source, let name): name.hasPrefix("env.") ? "{{{\(name)}}}" : source
            }
        }.joined()
    }
}

/// Escapes a value for the inside of a JSON string.
struct JSONStringContentType: MustacheContentType {
    func escapeText(_ text: String) -> String { JSONString.escaped(text) }
}

/// Percent-encodes a value for a URL path segment or query value (RFC 3986 unreserved kept).
struct URLComponentContentType: MustacheContentType {
    func escapeText(_ text: String) -> String { PercentEncoding.encoded(text) }
}
