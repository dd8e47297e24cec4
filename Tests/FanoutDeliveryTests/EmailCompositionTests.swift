import FanoutCore
@testable import FanoutDelivery
import Foundation
import Testing
import TestSupport

struct EmailCompositionTests {
    static func template(_ files: [String: String]) throws -> EmailTemplate {
        let folder = TestEnvironment.makeTemporaryDirectory("tpl")
        let directory = folder.appendingPathComponent("email/t")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        for (name, text) in files {
            try text.write(to: directory.appendingPathComponent(name), atomically: true, encoding: .utf8)
        }
        return try EmailTemplate.load(name: "t", folder: folder.path)
    }

    static var context: [String: Any] {
        [
            "name": "Zoë <b>&\"'", "code": Int64(42), "ratio": 2.5, "vip": true,
            "job": ["id": UInt64(7), "company_id": UInt64(3)] as [String: Any],
            "tags": ["a", "b"],
        ]
    }

    /// Flat sources take the fast path (checked, so the comparison is not swift-mustache against
    /// itself); one with sections shows the choice of path changes nothing either.
    @Test(arguments: [
        (
            "Hi {{name}}, {{{name}}} / {{&name}} #{{code}} {{ratio}} {{vip}} "
                + "{{job.id}}/{{job.company_id}} [{{missing}}] {{! comment }}",
            true
        ),
        ("{{ name }}{{job.id}}-{{ratio}}<{{{vip}}}> {{nested.none}}{{code}}", true),
        ("{{#vip}}VIP {{name}}{{/vip}}{{^vip}}no{{/vip}} {{#tags}}<{{.}}>{{/tags}}", false),
    ])
    func fastPathRendersExactlyAsMustache(source: String, flat: Bool) throws {
        #expect(FlatTemplate.isFlat(source) == flat)
        let fast = try Self.template(["subject.mustache": "s", "html.mustache": source, "text.mustache": source])
        let reference = try MustacheReference.render(source, context: Self.context)
        let rendered = fast.render(Self.context)
        #expect(rendered.html == reference.html)
        #expect(rendered.text == reference.text)
    }

    @Test func variablesLookedUpByPathRenderAsTheirDictionary() throws {
        let source =
            "{{email}}|{{name}}|{{job.id}}|{{job.company_id}}|{{job.nope}}|{{job.id.x}}|{{item}}|{{item.id}}|"
            + "{{item.id.x}}|{{code}}|{{nested.a}}|{{nested.a.b}}|{{nested}}|{{missing}}|{{email.x}}|{{flag}}|{{ratio}}"
        let template = try Self.template([
            "subject.mustache": source, "html.mustache": source,
            "text.mustache": "{{#flag}}slow path {{name}}{{/flag}}",
        ])
        // The data's own "email" and "name" lose to the item's columns, as in the dictionary.
        let variables = try EmailContext.variables(
            email: "b@example.test", name: "<B>",
            dataJSON:
                #"{"email": "data@x.test", "name": "N", "code": 7, "nested": "#
                + #"{"a": "deep"}, "flag": true, "ratio": 0.5}"#,
            jobID: 9, companyID: 3, itemID: 8
        )
        let direct = template.render(variables)
        let viaDictionary = template.render(variables.dictionary)
        #expect(direct == viaDictionary)
        #expect(direct.html?.hasPrefix("b@example.test|&lt;B&gt;|") == true)
        #expect(direct.html?.contains("|9|3|||") == true)
        #expect(direct.text == "slow path <B>")
    }

    @Test func partsThatRenderToNothingAreEmpty() throws {
        let template = try Self.template([
            "subject.mustache": "{{missing}}", "html.mustache": "{{missing}}", "text.mustache": "",
        ])
        let rendered = template.render(
            try EmailContext.variables(
                email: "b@example.test", name: nil, dataJSON: nil, jobID: 1, companyID: 1, itemID: 1))
        #expect(rendered == RenderedEmail(subject: "", htmlBytes: [], textBytes: []))
    }

    @Test func escapingByPart() throws {
        let template = try Self.template([
            "subject.mustache": "Hello {{name}}\r\nBcc: x@y.test", "html.mustache": "<p>{{name}}</p>",
            "text.mustache": "{{name}}",
        ])
        let rendered = template.render(["name": "<b>Bob</b>\nBcc: victim@example.test"])
        #expect(rendered.html == "<p>&lt;b&gt;Bob&lt;/b&gt;\nBcc: victim@example.test</p>")
        #expect(rendered.text == "<b>Bob</b>\nBcc: victim@example.test")
        #expect(!rendered.subject.contains("\n") && !rendered.subject.contains("\r"))
        #expect(rendered.subject == "Hello <b>Bob</b> Bcc: victim@example.test Bcc: x@y.test")
    }

    /// Every value that lands in HTML, through a variable, a section, an inverted section or a
    /// list, in text or in an attribute, is escaped by the one function (`HTMLText.escaped`):
    /// a quote followed by a combining mark (one Character) once slipped through sections.
    @Test func hostileValuesAreEscapedOnEveryHTMLPath() throws {
        let hostile = "\"\u{301} onmouseover=alert(1) x=\"<script>&'\u{301}"
        let escaped = HTMLText.escaped(hostile)
        #expect(!escaped.contains("\"") && !escaped.contains("'") && !escaped.contains("<"))
        let html = """
            <a title="{{name}}">{{name}}</a>\
            {{#vip}}<b title="{{name}}">{{name}}</b>{{/vip}}\
            {{^missing}}<i title='{{name}}'>{{name}}</i>{{/missing}}\
            {{#tags}}<u title="{{.}}">{{.}}</u>{{/tags}}\
            {{#nested}}<s>{{deep}}</s>{{/nested}}
            """
        let template = try Self.template(["subject.mustache": "s", "html.mustache": html])
        let rendered =
            template.render(
                [
                    "name": hostile, "vip": true, "tags": [hostile, "plain"],
                    "nested": ["deep": hostile] as [String: Any],
                ] as [String: Any]
            ).html ?? ""
        let e = escaped
        #expect(
            rendered == """
                <a title="\(e)">\(e)</a><b title="\(e)">\(e)</b><i title='\(e)'>\(e)</i>\
                <u title="\(e)">\(e)</u><u title="plain">plain</u><s>\(e)</s>
                """)
        #expect(!rendered.contains("<script"))
        let quoteWithMark = "\"\u{301}"
        #expect(!rendered.contains(quoteWithMark), "no quote reaches the page with a combining mark on it")
    }

    @Test func loadingErrorsNameTheTemplateAndFile() throws {
        let folder = TestEnvironment.makeTemporaryDirectory("tpl")
        #expect(throws: TemplateError.self) { try EmailTemplate.load(name: "../etc", folder: folder.path) }
        let missing = #expect(throws: TemplateError.self) { try EmailTemplate.load(name: "nope", folder: folder.path) }
        #expect(missing?.description.contains("nope") == true)
        let noSubject = #expect(throws: TemplateError.self) { try Self.template(["text.mustache": "x"]) }
        #expect(noSubject?.description.contains("subject.mustache") == true)
        let noBody = #expect(throws: TemplateError.self) { try Self.template(["subject.mustache": "x"]) }
        #expect(noBody?.description.contains("neither") == true)
        let broken = #expect(throws: TemplateError.self) {
            try Self.template(["subject.mustache": "x", "html.mustache": "{{#a}}open"])
        }
        #expect(broken?.description.contains("html.mustache does not parse") == true)
    }

    /// A part that is there but cannot be read is an error, never taken for an absent part (the
    /// message would go out without its HTML). Root reads any file, so "unreadable" here is a
    /// folder or a dangling link where the file should be.
    @Test(arguments: ["folder", "dangling link"])
    func unreadablePartIsAnErrorNotAbsent(kind: String) throws {
        let folder = TestEnvironment.makeTemporaryDirectory("tpl")
        let directory = folder.appendingPathComponent("email/t")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        try "Hi".write(to: directory.appendingPathComponent("subject.mustache"), atomically: true, encoding: .utf8)
        try "plain".write(to: directory.appendingPathComponent("text.mustache"), atomically: true, encoding: .utf8)
        let html = directory.appendingPathComponent("html.mustache")
        if kind == "folder" {
            try FileManager.default.createDirectory(at: html, withIntermediateDirectories: false)
        } else {
            try FileManager.default.createSymbolicLink(
                atPath: html.path, withDestinationPath: "/nonexistent/html.mustache")
        }
        let error = #expect(throws: TemplateError.self) { try EmailTemplate.load(name: "t", folder: folder.path) }
        #expect(
            error?.description.contains("email/t/html.mustache cannot be read") == true, "\(String(describing: error))")
    }

    @Test(arguments: [
        ("a@example.test", true), ("first.last+tag@sub.example.co.uk", true), ("\"a b\"@example.test", true),
        ("user@[127.0.0.1]", true), ("  padded@example.test  ", true),
        ("a..b@example.test", false), (".a@example.test", false), ("a@x", false), ("a@-x.test", false),
        ("a@x-.test", false), ("a@example.test.", false), ("no-at.example.test", false), ("a@@example.test", false),
        (String(repeating: "l", count: 65) + "@example.test", false), ("zoë@example.test", false),
        ("a@example.test\r\nBcc: v@example.test", false), ("a@example.test>", false), ("<a@example.test", false),
        ("a,b@example.test", false), ("a b@example.test", false), ("a@exa mple.test", false),
        ("a\0@example.test", false),
        ("", false), ("a@[999.1.1.1]", false),
    ])
    func addressChecks(address: String, valid: Bool) {
        switch EmailAddress.validate(address) {
        case .success: #expect(valid, "\(address) was accepted")
        case .failure(let problem):
            #expect(!valid, "\(address) was refused: \(problem)")
            #expect(!problem.reason.contains("\n") && !problem.reason.contains("\r"))
        }
    }

    @Test func headersAreEncodedAndCannotBeInjected() throws {
        let bytes = MIMEMessage.build(
            from: Mailbox(address: "sender@example.test", name: "Fanout Sender"),
            to: Mailbox(address: "r@example.test", name: "Zoë\r\nBcc: victim@example.test"),
            subject: "Grüße 🎉 \r\nBcc: victim2@example.test " + String(repeating: "long words ", count: 20),
            text: "plain", html: "<p>html</p>",
            messageID: "<fanout.email.1.2@example.test>", date: Date(timeIntervalSince1970: 0)
        )
        let message = String(decoding: bytes, as: UTF8.self)
        let header = message.components(separatedBy: "\r\n\r\n")[0]
        let names = header.components(separatedBy: "\r\n").filter { !$0.hasPrefix(" ") }.map {
            String($0.prefix { $0 != ":" })
        }
        #expect(names == ["Date", "From", "To", "Subject", "Message-ID", "MIME-Version", "Content-Type"])
        #expect(header.contains("Date: Thu, 1 Jan 1970 00:00:00 +0000"))
        #expect(header.contains("Message-ID: <fanout.email.1.2@example.test>"))
        #expect(header.components(separatedBy: "\r\n").allSatisfy { $0.utf8.count <= 998 })
        // The encoded words decode back to the original, line breaks turned into spaces.
        let subjectLines = header.components(separatedBy: "\r\n").drop { !$0.hasPrefix("Subject:") }.prefix {
            $0.hasPrefix("Subject:") || $0.hasPrefix(" ")
        }
        let decoded = subjectLines.joined().replacingOccurrences(of: "Subject: ", with: "").components(separatedBy: " ")
            .map { word -> String in
                guard word.hasPrefix("=?UTF-8?B?"), word.hasSuffix("?=") else { return word }
                let payload = String(word.dropFirst(10).dropLast(2))
                return String(decoding: Data(base64Encoded: payload)!, as: UTF8.self)
            }.joined()
        #expect(decoded.hasPrefix("Grüße 🎉   Bcc: victim2@example.test long words"))
        #expect(message.contains("Content-Type: multipart/alternative"))
        #expect(message.contains("--=_fanout_"))
    }

    @Test func quotedPrintableKeepsLinesShortAndRoundTrips() throws {
        let body = String(repeating: "é and = and trailing space ", count: 400) + "\n.dot line\r\nlast \t"
        let bytes = MIMEMessage.build(
            from: Mailbox(address: "a@example.test"), to: Mailbox(address: "b@example.test"), subject: "s", text: body,
            html: nil, messageID: "<m@example.test>", date: Date())
        let message = String(decoding: bytes, as: UTF8.self)
        let encoded = message.components(separatedBy: "\r\n\r\n").dropFirst().joined(separator: "\r\n\r\n")
        #expect(encoded.components(separatedBy: "\r\n").allSatisfy { $0.utf8.count <= 76 })
        #expect(!encoded.contains("\n.") || encoded.contains("=2E"))
        // Decode: soft breaks out, =XX back to bytes.
        var decoded: [UInt8] = []
        let raw = Array(encoded.replacingOccurrences(of: "=\r\n", with: "").utf8)
        var i = 0
        while i < raw.count {
            if raw[i] == UInt8(ascii: "="), i + 2 < raw.count,
                let value = UInt8(String(decoding: raw[(i + 1)...(i + 2)], as: UTF8.self), radix: 16)
            {
                decoded.append(value)
                i += 3
            } else {
                decoded.append(raw[i])
                i += 1
            }
        }
        let expected =
            body.replacingOccurrences(of: "\r\n", with: "\n").replacingOccurrences(of: "\n", with: "\r\n") + "\r\n"
        #expect(String(decoding: decoded, as: UTF8.self) == expected)
    }

    @Test func quotedPrintableCopiesOnlyLinesThatNeedNoEncoding() {
        let seventyFive = String(repeating: "a", count: 75)
        // Copied as they are: short printable lines, blanks inside.
        #expect(MIMEMessage.quotedPrintable("Hello world\n\(seventyFive)\r\nx") == "Hello world\r\n\(seventyFive)\r\nx")
        // Each of these needs the encoder: too long, '=', a trailing blank, a leading dot, 8-bit, a control.
        #expect(MIMEMessage.quotedPrintable(seventyFive + "b") == seventyFive + "=\r\nb")
        #expect(MIMEMessage.quotedPrintable("a=b") == "a=3Db")
        #expect(MIMEMessage.quotedPrintable("end \nnext\t") == "end=20\r\nnext=09")
        #expect(MIMEMessage.quotedPrintable(".dot\n..") == "=2Edot\r\n=2E.")
        #expect(MIMEMessage.quotedPrintable("café") == "caf=C3=A9")
        #expect(MIMEMessage.quotedPrintable("a\u{1}b") == "a=01b")
        #expect(MIMEMessage.quotedPrintable("\n\n") == "\r\n\r\n")
    }

    /// Quoted-printable one byte at a time, by the same rules and with no fast path: the oracle
    /// for the encoder's line copying and eight-byte checks.
    static func referenceQuotedPrintable(_ bytes: [UInt8]) -> [UInt8] {
        let hex = Array("0123456789ABCDEF".utf8)
        var out: [UInt8] = []
        var column = 0
        var index = 0
        while index < bytes.count {
            let byte = bytes[index]
            if byte == 13 || byte == 10 {
                out += [13, 10]
                column = 0
                index += byte == 13 && index + 1 < bytes.count && bytes[index + 1] == 10 ? 2 : 1
                continue
            }
            let next = index + 1 < bytes.count ? bytes[index + 1] : 10
            let blank = (byte == 32 || byte == 9) && next != 13 && next != 10
            let encode = !((33...126).contains(byte) && byte != 61 || blank) || (column == 0 && byte == 46)
            if column + (encode ? 3 : 1) > 75 {
                out += Array("=\r\n".utf8)
                column = 0
            }
            out += encode ? [61, hex[Int(byte >> 4)], hex[Int(byte & 15)]] : [byte]
            column += encode ? 3 : 1
            index += 1
        }
        return out
    }

    @Test func quotedPrintableMatchesAByteByByteEncoder() {
        // Lines around the 75-character limit, from an alphabet of every kind of byte the
        // encoder treats apart; a fixed seed, so a failure can be replayed.
        let alphabet: [[UInt8]] = ["a", "Z", "~", " ", "\t", "=", ".", "\r", "\n", "\r\n", "é", "\u{1}", "\u{7F}"].map {
            Array($0.utf8)
        }
        var seed: UInt64 = 0x9E37_79B9_7F4A_7C15
        func next(_ bound: Int) -> Int {
            seed = seed &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return Int((seed >> 33) % UInt64(bound))
        }
        for _ in 0..<2_000 {
            var input: [UInt8] = []
            for _ in 0..<(1 + next(4)) {
                let length = [0, 1, 7, 8, 9, 60, 74, 75, 76, 77, 150][next(11)]
                for _ in 0..<length {
                    // Mostly plain letters, as real text is, so the fast path runs often.
                    input += next(4) == 0 ? alphabet[next(alphabet.count)] : [UInt8(ascii: "a") + UInt8(next(26))]
                }
                input += alphabet[[7, 8, 9][next(3)]]
            }
            let text = String(decoding: input, as: UTF8.self)
            let expected = String(decoding: Self.referenceQuotedPrintable(Array(text.utf8)), as: UTF8.self)
            #expect(MIMEMessage.quotedPrintable(text) == expected, "input: \(Array(text.utf8))")
        }
    }

    @Test func subjectsBecomeOneLine() {
        #expect(EmailTemplate.oneLine("Hello Bob") == "Hello Bob")
        #expect(EmailTemplate.oneLine("  Hello \r\n\t Bob  ") == "Hello Bob")
        #expect(EmailTemplate.oneLine("Grüße\u{2028}an\u{0}Zoë") == "Grüße an Zoë")
        #expect(EmailTemplate.oneLine("a  b") == "a b")
        #expect(EmailTemplate.oneLine("") == "")
        #expect(EmailTemplate.oneLine("\n") == "")
    }

    @Test func itemDataMustBeAJSONObject() throws {
        let template = try Self.template(["subject.mustache": "s", "text.mustache": "{{code}}"])
        let composer = EmailComposer(
            template: template, from: Mailbox(address: "a@example.test"), messageIDDomain: "example.test")
        let bad = composer.compose(
            jobID: 1, companyID: 1, itemID: 1, email: "b@example.test", name: nil, dataJSON: "[1, 2]", date: Date())
        guard case .failure(let rejection) = bad else { Issue.record("array data accepted"); return }
        #expect(rejection.reason.contains("not a JSON object"))
        let broken = composer.compose(
            jobID: 1, companyID: 1, itemID: 1, email: "b@example.test", name: nil, dataJSON: "{oops", date: Date())
        guard case .failure = broken else { Issue.record("broken JSON accepted"); return }
        let good = composer.compose(
            jobID: 9, companyID: 1, itemID: 8, email: "b@example.test", name: "B",
            dataJSON: #"{"code": 7, "name": "ignored"}"#, date: Date())
        let email = try good.get()
        #expect(email.messageID == "<fanout.email.9.8@example.test>")
        #expect(String(decoding: email.bytes, as: UTF8.self).contains("\r\n\r\n7\r\n"))
    }
}

/// swift-mustache's own rendering of a source, for comparing the fast path against.
enum MustacheReference {
    static func render(_ source: String, context: [String: Any]) throws -> (html: String, text: String) {
        let html = try EmailCompositionTests.template([
            "subject.mustache": "s", "html.mustache": source + "{{#vip}}{{/vip}}",
        ])
        let text = try EmailCompositionTests.template([
            "subject.mustache": "s", "text.mustache": source + "{{#vip}}{{/vip}}",
        ])
        // The trailing empty section keeps these off the fast path.
        return (html.render(context).html ?? "", text.render(context).text ?? "")
    }
}

struct WalletTemplateTests {
    static func load(_ text: String) throws -> WalletTemplate {
        let folder = TestEnvironment.makeTemporaryDirectory("wtpl")
        let wallet = folder.appendingPathComponent("wallet")
        try FileManager.default.createDirectory(at: wallet, withIntermediateDirectories: true)
        try text.write(to: wallet.appendingPathComponent("t.http.mustache"), atomically: true, encoding: .utf8)
        return try WalletTemplate.load(name: "t", folder: folder.path)
    }

    @Test func aRawValueThatBreaksTheURLRejectsOnlyThatItem() throws {
        let template = try Self.load("POST https://api.example.test/cards/{{{card}}}\n")
        #expect(try #require(try template.render(["card": "7"]).get().first).url == "https://api.example.test/cards/7")
        for bad in ["7 8", "7\t8", "7\u{7F}"] {
            guard case .failure(let rejection) = template.render(["card": bad]) else {
                Issue.record("\(bad) was not rejected"); continue
            }
            #expect(rejection.reason.hasPrefix("the rendered URL contains a space or a control character"))
        }
    }

    @Test func fastPathMatchesMustacheForURLHeadersAndJSON() throws {
        let source = """
            # comment
            PATCH {{{env.BASE}}}/objects/{{issuer}}.{{card_id}}?q={{name}}
            Content-Type: application/json
            X-Name: {{name}} {{{name}}}

            {"name": "{{name}}", "raw": "{{{safe}}}", "n": {{card_id}}, "job": "{{job.id}}"}
            """
        let context: [String: Any] = [
            "env": ["BASE": "https://api.example.test/v1"], "issuer": "33 88", "card_id": UInt64(7),
            "name": "Zoë \"q\" \\ / & ? = 🎉 \t", "safe": "plain", "job": ["id": UInt64(3)] as [String: Any],
        ]
        let flat = try Self.load(source)
        let slow = try Self.load(
            source.replacingOccurrences(of: "\"job\": \"{{job.id}}\"}", with: "\"job\": \"{{job.id}}\"}{{#x}}{{/x}}")
                .replacingOccurrences(of: "?q={{name}}", with: "?q={{name}}{{#x}}{{/x}}")
                .replacingOccurrences(
                    of: "X-Name: {{name}} {{{name}}}", with: "X-Name: {{name}} {{{name}}}{{#x}}{{/x}}"))
        let a = try #require(try flat.render(context).get().first)
        let b = try #require(try slow.render(context).get().first)
        #expect(a.url == b.url)
        let encodedURL =
            "https://api.example.test/v1/objects/33%2088.7"
            + "?q=Zo%C3%AB%20%22q%22%20%5C%20%2F%20%26%20%3F%20%3D%20%F0%9F%8E%89%20%09"
        #expect(a.url == encodedURL)
        #expect(a.body == b.body)
        #expect(a.headers.map(\.value) == b.headers.map(\.value))
        #expect(a.method == "PATCH")
        let object = try JSONSerialization.jsonObject(with: Data(a.body.utf8)) as? [String: Any]
        #expect(object?["name"] as? String == context["name"] as? String)
    }

    @Test func headerLineBreaksAndInvalidJSONFailTheItem() throws {
        let template = try Self.load(
            "POST https://x.test/a\nX-V: {{v}}\nContent-Type: application/json\n\n{\"n\": {{{raw}}}}")
        guard case .failure(let header) = template.render(["v": "a\r\nX-Evil: 1", "raw": "1"]) else {
            Issue.record("header accepted"); return
        }
        #expect(header.reason.contains("line break"))
        guard case .failure(let json) = template.render(["v": "ok", "raw": "1, \"x\": "]) else {
            Issue.record("invalid JSON accepted"); return
        }
        #expect(json.reason.contains("not valid JSON"))
        #expect(throws: TemplateError.self) { try Self.load("not a request line") }
    }
}
