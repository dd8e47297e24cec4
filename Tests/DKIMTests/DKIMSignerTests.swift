import CDKIMParsedKeys
import DKIM
import Foundation
import Testing
import TestSupport

/// Signs with keys made by `openssl genpkey` at test time and verifies offline with Debian's
/// dkimpy (`python3-dkim`), given the public key as the TXT record a DNS lookup would return.
@Suite(.enabled(if: KeyPair.toolsAvailable))
struct DKIMSignerTests {
    static let domain = "example.com"
    static let selector = "fanout2026"
    static let signedHeaders = [
        "From", "To", "Subject", "Date", "Message-ID", "MIME-Version", "Content-Type", "List-Unsubscribe",
        "List-Unsubscribe-Post",
    ]

    @Test func rsaSignatureVerifies() throws {
        let keys = try KeyPair.rsa.get()
        let signer = try DKIMSigner(
            domain: Self.domain, selector: Self.selector, privateKeyPEM: keys.privateKeyPEM,
            signedHeaders: Self.signedHeaders)
        let message = sampleMessage()
        let field = try signer.signature(for: message)

        #expect(field.hasPrefix("DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=example.com;"))
        #expect(field.contains("s=fanout2026;"))
        #expect(!field.hasSuffix("\r\n"))
        // Folded with CRLF and a tab, never a bare LF, and short enough for any MTA.
        let lines = field.components(separatedBy: "\r\n")
        #expect(lines.count > 1)
        #expect(lines.dropFirst().allSatisfy { $0.hasPrefix("\t") })
        #expect(!lines.contains { $0.contains("\n") || $0.utf8.count > 78 })

        let signed = Array((field + "\r\n").utf8) + message
        #expect(try verify(signed, record: keys.txtRecord))
    }

    @Test func signsExactlyTheListedHeadersThatArePresent() throws {
        let keys = try KeyPair.rsa.get()
        let signer = try DKIMSigner(
            domain: Self.domain, selector: Self.selector, privateKeyPEM: keys.privateKeyPEM,
            signedHeaders: Self.signedHeaders + ["Reply-To", "CC"])
        let names = try signedNames(signer.signature(for: sampleMessage()))
        #expect(
            names == [
                "from", "to", "subject", "date", "message-id", "mime-version", "content-type", "list-unsubscribe",
                "list-unsubscribe-post",
            ])
        #expect(!names.contains("x-mailer"))
        #expect(!names.contains("reply-to"))

        // libopendkim always signs From, listed or not.
        let fromOnly = try DKIMSigner(key: signer.key, signedHeaders: [])
        #expect(try signedNames(fromOnly.signature(for: sampleMessage())) == ["from"])
    }

    enum Tampering: String, CaseIterable, CustomTestStringConvertible {
        case none, oneBodyByte, unsignedHeader, signedHeader, removedSignedHeader, signedHeaderFolding

        var testDescription: String { rawValue }

        func apply(_ message: [UInt8]) -> [UInt8] {
            var text = String(decoding: message, as: UTF8.self)
            switch self {
            case .none:
                break
            case .oneBodyByte:
                let index = text.range(of: "meeting notes")!.lowerBound
                text.replaceSubrange(index...index, with: "M")
                return Array(text.utf8)
            case .unsignedHeader:
                text = text.replacingOccurrences(of: "X-Mailer: fanout 1.0", with: "X-Mailer: something else")
            case .signedHeader:
                text = text.replacingOccurrences(of: "<https://example.com/u/", with: "<https://evil.example/u/")
            case .removedSignedHeader:
                text = text.replacingOccurrences(of: "List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n", with: "")
            case .signedHeaderFolding:
                // Relaxed canonicalisation: refolding a signed header keeps the signature valid.
                text = text.replacingOccurrences(of: "\r\nTo: ", with: "\r\nTo:\r\n   ")
            }
            return Array(text.utf8)
        }

        var stillVerifies: Bool {
            switch self {
            case .none, .unsignedHeader, .signedHeaderFolding: true
            case .oneBodyByte, .signedHeader, .removedSignedHeader: false
            }
        }
    }

    @Test(arguments: Tampering.allCases)
    func changesAfterSigning(_ tampering: Tampering) throws {
        let keys = try KeyPair.rsa.get()
        let signer = try DKIMSigner(
            domain: Self.domain, selector: Self.selector, privateKeyPEM: keys.privateKeyPEM,
            signedHeaders: Self.signedHeaders)
        let message = sampleMessage()
        let field = try signer.signature(for: message)
        let changed = tampering.apply(message)
        if tampering != .none { #expect(changed != message) }
        #expect(try verify(Array((field + "\r\n").utf8) + changed, record: keys.txtRecord) == tampering.stillVerifies)
    }

    @Test func oneSignerSignsManyMessages() throws {
        let keys = try KeyPair.rsa.get()
        let signer = try DKIMSigner(
            domain: Self.domain, selector: Self.selector, privateKeyPEM: keys.privateKeyPEM,
            signedHeaders: Self.signedHeaders)
        for number in 1...3 {
            let message = sampleMessage(recipient: "Reader \(number) <reader\(number)@example.org>")
            let field = try signer.signature(for: message)
            #expect(try verify(Array((field + "\r\n").utf8) + message, record: keys.txtRecord))
        }
    }

    /// Each key is parsed once for the whole process (parsed_keys.c), and a signer never signs
    /// with another signer's key: three keys interleaved, each signature checked against its own.
    @Test func signersWithDifferentKeysInterleaveEachWithItsOwnParsedKey() throws {
        let pairs = [
            (try KeyPair.rsa.get(), DKIMAlgorithm.rsaSHA256), (try KeyPair.otherRSA.get(), .rsaSHA256),
            (try KeyPair.ed25519.get(), .ed25519SHA256),
        ]
        let signers = try pairs.map { keys, algorithm in
            try DKIMSigner(
                domain: Self.domain, selector: Self.selector, privateKeyPEM: keys.privateKeyPEM,
                algorithm: algorithm, signedHeaders: Self.signedHeaders)
        }
        let usesBefore = fanout_remembered_key_uses()
        for round in 1...2 {
            for (index, signer) in signers.enumerated() {
                let message = sampleMessage(recipient: "Reader \(round) <reader\(round)@example.org>")
                let signed = Array((try signer.signature(for: message) + "\r\n").utf8) + message
                #expect(try verify(signed, record: pairs[index].0.txtRecord))
                if index < 2 { // the two RSA keys: neither's signature passes with the other's record
                    #expect(try !verify(signed, record: pairs[1 - index].0.txtRecord))
                }
            }
        }
        // Other tests sign at the same time, so at least this test's six.
        #expect(fanout_remembered_key_uses() - usesBefore >= 6)
    }

    @Test func pkcs1KeyVerifies() throws {
        let keys = try KeyPair.rsa.get()
        #expect(keys.pkcs1PEM.hasPrefix("-----BEGIN RSA PRIVATE KEY-----"))
        let signer = try DKIMSigner(
            domain: Self.domain, selector: Self.selector, privateKeyPEM: keys.pkcs1PEM,
            signedHeaders: Self.signedHeaders
        )
        let message = sampleMessage()
        let field = try signer.signature(for: message)
        #expect(try verify(Array((field + "\r\n").utf8) + message, record: keys.txtRecord))
    }

    @Test(arguments: [false, true])
    func ed25519SignatureVerifies(rawSeed: Bool) throws {
        let keys = try KeyPair.ed25519.get()
        let signer = try DKIMSigner(
            domain: Self.domain, selector: Self.selector, privateKeyPEM: rawSeed ? keys.pkcs1PEM : keys.privateKeyPEM,
            algorithm: .ed25519SHA256, signedHeaders: Self.signedHeaders)
        let message = sampleMessage()
        let field = try signer.signature(for: message)
        #expect(field.hasPrefix("DKIM-Signature: v=1; a=ed25519-sha256; c=relaxed/relaxed;"))
        #expect(try verify(Array((field + "\r\n").utf8) + message, record: keys.txtRecord))
        #expect(
            try !verify(Array((field + "\r\n").utf8) + Tampering.oneBodyByte.apply(message), record: keys.txtRecord))
    }

    enum BadKey: String, CaseIterable, CustomTestStringConvertible {
        case garbage, garbagePEM, truncatedRSA, publicKey, encrypted, ed25519AsRSA, rsaAsEd25519, ecKey, empty

        var testDescription: String { rawValue }
    }

    @Test(arguments: BadKey.allCases)
    func unusableKeyIsAClearErrorWithoutTheKey(_ bad: BadKey) throws {
        let rsa = try KeyPair.rsa.get()
        let ed25519 = try KeyPair.ed25519.get()
        var algorithm = DKIMAlgorithm.rsaSHA256
        let key: String
        switch bad {
        case .garbage:
            key = "SECRETgarbage-not-a-key"
        case .garbagePEM:
            key = "-----BEGIN PRIVATE KEY-----\nSECRETgarbageSECRETgarbage\n-----END PRIVATE KEY-----\n"
        case .truncatedRSA:
            // The PKCS#8 header and the RSA OID survive, so only OpenSSL (through libopendkim) sees it.
            var lines = rsa.privateKeyPEM.split(separator: "\n").map(String.init)
            lines.removeSubrange(5..<9)
            key = lines.joined(separator: "\n")
        case .publicKey:
            key = rsa.publicKeyPEM
        case .encrypted:
            key = try KeyPair.openssl(
                ["pkey", "-aes256", "-passout", "pass:SECRETpass"], input: rsa.privateKeyPEM)
        case .ed25519AsRSA:
            key = ed25519.privateKeyPEM
        case .rsaAsEd25519:
            key = rsa.privateKeyPEM
            algorithm = .ed25519SHA256
        case .ecKey:
            key = try KeyPair.openssl(["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"])
        case .empty:
            key = ""
        }
        let error = #expect(throws: DKIMError.self) {
            try DKIMSigner(
                domain: Self.domain, selector: Self.selector, privateKeyPEM: key, algorithm: algorithm,
                signedHeaders: Self.signedHeaders)
        }
        #expect(error?.code == .invalidKey)
        let description = error.map { String(describing: $0) } ?? ""
        #expect(description.contains("the DKIM key"))
        #expect(!description.contains("SECRET"))
        for line in key.split(separator: "\n") where line.count > 20 && !line.hasPrefix("-----") {
            #expect(!description.contains(line))
        }
    }

    @Test func theKeyDoesNotShowInDescriptions() throws {
        let keys = try KeyPair.rsa.get()
        let key = try DKIMKey(domain: Self.domain, selector: Self.selector, privateKeyPEM: keys.privateKeyPEM)
        let bodyLine = String(keys.privateKeyPEM.split(separator: "\n")[1])
        for text in [String(describing: key), String(reflecting: key), dumped(key)] {
            #expect(text.contains("example.com"))
            #expect(!text.contains(bodyLine))
        }
    }

    @Test func unsignableMessageIsRefused() throws {
        let keys = try KeyPair.rsa.get()
        let signer = try DKIMSigner(
            domain: Self.domain, selector: Self.selector, privateKeyPEM: keys.privateKeyPEM,
            signedHeaders: Self.signedHeaders)
        let message = Array("To: a@example.org\r\nSubject: hi\r\n\r\nbody\r\n".utf8)
        let error = #expect(throws: DKIMError.self) { try signer.signature(for: message) }
        #expect(error?.code == .invalidMessage)
        #expect(error.map { String(describing: $0) }?.contains("from") == true)
        #expect(throws: DKIMError.self) { try signer.signature(for: []) }

        let bareLF = Array("From: a@example.com\r\nSubject: hi\r\n\r\nline one\nline two\r\n".utf8)
        let lfError = #expect(throws: DKIMError.self) { try signer.signature(for: bareLF) }
        #expect(lfError?.code == .invalidMessage)
        #expect(lfError?.message.contains("at byte 44") == true)
    }

    @Test(arguments: ["", "X Mailer", "Subject:", "List-*", "a.b"])
    func headerNameThatCannotBeSignedIsRefused(_ name: String) throws {
        let keys = try KeyPair.rsa.get()
        let key = try DKIMKey(domain: Self.domain, selector: Self.selector, privateKeyPEM: keys.privateKeyPEM)
        let error = #expect(throws: DKIMError.self) { try DKIMSigner(key: key, signedHeaders: ["From", name]) }
        #expect(error?.code == .invalidArgument)
    }

    @Test(arguments: ["", "exa mple.com", "example.com.", "ex;ample.com", "bücher.de"])
    func domainThatIsNotADNSNameIsRefused(_ domain: String) throws {
        let keys = try KeyPair.rsa.get()
        let error = #expect(throws: DKIMError.self) {
            try DKIMKey(domain: domain, selector: Self.selector, privateKeyPEM: keys.privateKeyPEM)
        }
        #expect(error?.code == .invalidArgument)
    }

    // MARK: - Helpers

    /// A newsletter as the sender composes it: CRLF line ends, a folded Subject, a multipart body
    /// with a line longer than 78 characters, trailing spaces and tabs, and a blank-line ending.
    func sampleMessage(recipient: String = "=?UTF-8?Q?Ana_N=C3=BA=C3=B1ez?= <ana@example.org>") -> [UInt8] {
        let longLine = String(repeating: "Lorem ipsum dolor sit amet, consectetur adipiscing elit. ", count: 12)
        let lines = [
            "From: \"Fanout News\" <news@example.com>",
            "To: \(recipient)",
            "Subject: =?UTF-8?Q?Monthly_news_=E2=80=93_December?=",
            " and some more words on a folded line",
            "Date: Sun, 06 Dec 2026 03:25:24 +0000",
            "Message-ID: <20261206032524.42.17@example.com>",
            "MIME-Version: 1.0",
            "Content-Type: multipart/alternative; boundary=\"=_fanout_b1\"",
            "List-Unsubscribe: <https://example.com/u/3f9a1c>, <mailto:unsubscribe@example.com?subject=3f9a1c>",
            "List-Unsubscribe-Post: List-Unsubscribe=One-Click",
            "X-Mailer: fanout 1.0",
            "",
            "--=_fanout_b1",
            "Content-Type: text/plain; charset=utf-8",
            "Content-Transfer-Encoding: 8bit",
            "",
            "Hello Ana,   ",
            "here are the meeting notes.\t ",
            longLine,
            "",
            "",
            "--=_fanout_b1",
            "Content-Type: text/html; charset=utf-8",
            "Content-Transfer-Encoding: 8bit",
            "",
            "<p>Hello Ana,</p>  ",
            "<p>\(longLine)</p>",
            "--=_fanout_b1--",
            "",
            "",
        ]
        return Array(lines.joined(separator: "\r\n").utf8)
    }

    /// The lower-cased names in the field's `h=` tag.
    func signedNames(_ field: String) throws -> [String] {
        let unfolded = field.replacingOccurrences(of: "\r\n\t", with: "").replacingOccurrences(of: " ", with: "")
        let tag = try #require(unfolded.split(separator: ";").first { $0.hasPrefix("h=") })
        return tag.dropFirst(2).split(separator: ":").map { $0.lowercased() }
    }

    func dumped(_ value: some Any) -> String {
        var text = ""
        dump(value, to: &text)
        return text
    }

    /// dkimpy's verdict on a signed message, with `record` as the TXT record of
    /// `<selector>._domainkey.<domain>.` and no other name resolving.
    func verify(_ signed: [UInt8], record: String) throws -> Bool {
        let folder = TestEnvironment.makeTemporaryDirectory("dkim-verify")
        defer { try? FileManager.default.removeItem(at: folder) }
        let messageFile = folder.appendingPathComponent("message.eml")
        try Data(signed).write(to: messageFile)
        return try dkimpyVerifies(messageFile, record: record, name: "\(Self.selector)._domainkey.\(Self.domain).")
    }
}

/// A key pair made with openssl once per test run: the private key text and the DKIM TXT record.
struct KeyPair: Sendable {
    var privateKeyPEM: String
    /// For RSA, the same key in PKCS#1 (`BEGIN RSA PRIVATE KEY`); for Ed25519, the base64 of the
    /// raw 32-byte seed (dkimpy's form).
    var pkcs1PEM: String
    var publicKeyPEM: String
    var txtRecord: String

    static let rsa = Result { try make(rsa: true) }
    static let otherRSA = Result { try make(rsa: true) }
    static let ed25519 = Result { try make(rsa: false) }

    static var toolsAvailable: Bool {
        TestEnvironment.requireServices
            || (FileManager.default.isExecutableFile(atPath: "/usr/bin/openssl")
                && FileManager.default.isExecutableFile(atPath: "/usr/bin/python3"))
    }

    private static func make(rsa: Bool) throws -> KeyPair {
        let pem =
            rsa
            ? try openssl(["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"])
            : try openssl(["genpkey", "-algorithm", "ed25519"])
        let publicPEM = try openssl(["pkey", "-pubout"], input: pem)
        let publicDER = try #require(Data(base64Encoded: base64Body(publicPEM)))
        let privateDER = try #require(Data(base64Encoded: base64Body(pem)))
        if rsa {
            let pkcs1 = try openssl(["rsa", "-traditional"], input: pem)
            return KeyPair(
                privateKeyPEM: pem, pkcs1PEM: pkcs1, publicKeyPEM: publicPEM,
                txtRecord: "v=DKIM1; k=rsa; p=\(publicDER.base64EncodedString())")
        }
        // RFC 8463: the record holds the raw 32-byte public key, the end of the SubjectPublicKeyInfo.
        return KeyPair(
            privateKeyPEM: pem, pkcs1PEM: privateDER.suffix(32).base64EncodedString(), publicKeyPEM: publicPEM,
            txtRecord: "v=DKIM1; k=ed25519; p=\(publicDER.suffix(32).base64EncodedString())")
    }

    private static func base64Body(_ pem: String) -> String {
        pem.split(separator: "\n").filter { !$0.hasPrefix("-----") }.joined()
    }

    /// Runs openssl with `input` as its `-in` file and returns what it wrote to `-out`.
    static func openssl(_ arguments: [String], input: String? = nil) throws -> String {
        let folder = TestEnvironment.makeTemporaryDirectory("dkim-key")
        defer { try? FileManager.default.removeItem(at: folder) }
        var arguments = arguments
        if let input {
            let inFile = folder.appendingPathComponent("in.pem")
            try input.write(to: inFile, atomically: true, encoding: .utf8)
            arguments += ["-in", inFile.path]
        }
        let outFile = folder.appendingPathComponent("out.pem")
        let result = try runProcess(URL(fileURLWithPath: "/usr/bin/openssl"), arguments + ["-out", outFile.path])
        guard result.status == 0 else {
            throw OpenSSLFailed(arguments: arguments, stderr: result.stderr)
        }
        return try String(contentsOf: outFile, encoding: .utf8)
    }

    struct OpenSSLFailed: Error {
        var arguments: [String]
        var stderr: String
    }
}
