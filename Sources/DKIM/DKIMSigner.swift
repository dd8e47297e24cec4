import CDKIM
import CDKIMParsedKeys

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// A DKIM signing algorithm.
public enum DKIMAlgorithm: String, Sendable {
    /// RSA with SHA-256: the one every verifier knows. The key is a PEM RSA private key.
    case rsaSHA256 = "rsa-sha256"
    /// Ed25519 with SHA-256 (RFC 8463). Not every verifier checks it yet: send it next to an RSA
    /// signature, not instead of one.
    case ed25519SHA256 = "ed25519-sha256"

    var libraryCode: dkim_alg_t {
        switch self {
        case .rsaSHA256: DKIM_SIGN_RSASHA256
        case .ed25519SHA256: DKIM_SIGN_ED25519SHA256
        }
    }
}

/// A signing domain, selector and private key, checked once so that a key that cannot sign
/// fails when the settings are read, not at the first message.
///
/// The key is accepted as:
/// - `rsaSHA256`: a PEM RSA private key, PKCS#8 (`BEGIN PRIVATE KEY`, what `openssl genpkey`
///   writes) or PKCS#1 (`BEGIN RSA PRIVATE KEY`, what `opendkim-genkey` writes);
/// - `ed25519SHA256`: a PEM PKCS#8 Ed25519 key (`openssl genpkey -algorithm ed25519`), or the
///   base64 of the raw 32-byte seed (what dkimpy's `dknewkey` writes), turned into PKCS#8 here
///   because libopendkim reads only PEM or DER.
///
/// Neither `description` nor a `Mirror` of the value shows the key.
public struct DKIMKey: Sendable, CustomStringConvertible, CustomReflectable {
    /// The signing domain (`d=`), in ASCII (the `xn--` form for an internationalised name).
    public let domain: String
    /// The selector (`s=`): the public key is published at `<selector>._domainkey.<domain>`.
    public let selector: String
    public let algorithm: DKIMAlgorithm
    /// The key as libopendkim reads it: PEM text.
    let privateKeyPEM: String

    /// Checks and loads a key.
    /// - Parameters:
    ///   - domain: The signing domain, `d=`.
    ///   - selector: The selector, `s=`.
    ///   - privateKeyPEM: The private key (see the type's documentation for the forms accepted).
    ///   - algorithm: The algorithm the key is for.
    /// - Throws: `DKIMError` with code `.invalidKey` when the key does not parse, is encrypted or is
    ///   of another type than the algorithm, `.invalidArgument` for a domain or selector that
    ///   cannot be a DNS name, `.unsupported` when libopendkim lacks the algorithm.
    public init(domain: String, selector: String, privateKeyPEM: String, algorithm: DKIMAlgorithm = .rsaSHA256)
        throws(DKIMError)
    {
        try Self.checkName(domain, what: "domain")
        try Self.checkName(selector, what: "selector")
        self.domain = domain
        self.selector = selector
        self.algorithm = algorithm
        self.privateKeyPEM = try PrivateKeyText.pem(from: privateKeyPEM, for: algorithm)
        try checkLoads()
    }

    public var description: String { "DKIMKey(d=\(domain), s=\(selector), a=\(algorithm.rawValue))" }

    public var customMirror: Mirror {
        Mirror(self, children: ["domain": domain, "selector": selector, "algorithm": algorithm])
    }

    private static func checkName(_ name: String, what: String) throws(DKIMError) {
        let allowed = name.utf8.allSatisfy { byte in
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"):
                true
            default:
                false
            }
        }
        guard allowed, !name.isEmpty, !name.hasPrefix("."), !name.hasSuffix("."), !name.contains("..") else {
            throw DKIMError(
                code: .invalidArgument,
                message: "the DKIM \(what) \"\(name)\" is not a DNS name in ASCII (use the xn-- form for IDN)",
                function: "DKIMKey")
        }
    }

    /// Loads the key the way signing will. libopendkim reads the key only at `dkim_eom`, so a key
    /// OpenSSL cannot read would otherwise fail at the first message; `dkim_privkey_load` does it now.
    private func checkLoads() throws(DKIMError) {
        guard let lib = dkim_init(nil, nil) else {
            throw DKIMError(code: .other, message: "could not initialise libopendkim", function: "dkim_init")
        }
        defer { dkim_close(lib) }
        if algorithm == .ed25519SHA256 && !dkim_libfeature(lib, UInt32(DKIM_FEATURE_ED25519)) {
            throw DKIMError(
                code: .unsupported,
                message: "this libopendkim was built without Ed25519: sign with rsa-sha256",
                function: "dkim_libfeature")
        }
        let strings = SigningStrings(self)
        var status = DKIM_STAT(DKIM_STAT_OK)
        guard let handle = strings.newHandle(lib, &status) else {
            throw DKIMError(code: .other, status: status, handle: nil, function: "dkim_sign")
        }
        defer { _ = dkim_free(handle) }
        status = dkim_privkey_load(handle)
        guard status == DKIM_STAT_OK else {
            var error = DKIMError(code: .invalidKey, status: status, handle: handle, function: "dkim_privkey_load")
            let kind = algorithm == .rsaSHA256 ? "RSA" : "Ed25519"
            error.message = "the DKIM key is not a PEM \(kind) private key OpenSSL can read (\(error.message))"
            throw error
        }
    }
}

/// Signs messages with one DKIM key: `DKIM-Signature` header fields, relaxed/relaxed.
///
/// ```swift
/// let signer = try DKIMSigner(key: key, signedHeaders: ["From", "To", "Subject", "Date", "Message-ID"])
/// let field = try signer.signature(for: message)  // "DKIM-Signature: v=1; a=rsa-sha256; …"
/// let signed = Array((field + "\r\n").utf8) + message
/// ```
///
/// A signer holds its own libopendkim library handle and is used by one thread at a time: make
/// one per thread. See http://www.opendkim.org/libopendkim/
public final class DKIMSigner {
    /// The key, domain and selector this signer signs with.
    public let key: DKIMKey
    private let lib: OpaquePointer
    private let strings: SigningStrings

    /// Makes a signer for a key that was checked already.
    /// - Parameters:
    ///   - key: The key, domain and selector.
    ///   - signedHeaders: The names of the header fields to sign when present (`h=`), matched
    ///     without regard to case. libopendkim always signs From, listed or not. Each name is
    ///     letters, digits, `-` and `_` (libopendkim turns the list into a regular expression).
    /// - Throws: `DKIMError` with code `.invalidArgument` for a header name it cannot take.
    public init(key: DKIMKey, signedHeaders: [String]) throws(DKIMError) {
        try Self.checkHeaderNames(signedHeaders)
        guard let lib = dkim_init(nil, nil) else {
            throw DKIMError(code: .other, message: "could not initialise libopendkim", function: "dkim_init")
        }
        self.lib = lib
        self.key = key
        self.strings = SigningStrings(key)
        try Self.setSignedHeaders(signedHeaders, lib: lib)
        strings.rememberParsedKey()
    }

    /// Checks the key and makes a signer (see `DKIMKey` for the forms of key accepted).
    /// - Throws: `DKIMError` for a key, domain, selector or header name that cannot be used.
    public convenience init(
        domain: String, selector: String, privateKeyPEM: String, algorithm: DKIMAlgorithm = .rsaSHA256,
        signedHeaders: [String]
    ) throws(DKIMError) {
        let key = try DKIMKey(domain: domain, selector: selector, privateKeyPEM: privateKeyPEM, algorithm: algorithm)
        try self.init(key: key, signedHeaders: signedHeaders)
    }

    deinit {
        dkim_close(lib)
    }

    /// The "DKIM-Signature: ..." header field (folded with CRLF and a tab, without the trailing
    /// CRLF) for a whole message.
    ///
    /// - Parameter message: The exact bytes that will be sent: CRLF-terminated header lines, a
    ///   blank line, the body; with CRLF line ends and not dot-stuffed (libcurl stuffs dots).
    /// - Throws: `DKIMError` with code `.invalidMessage` when libopendkim refuses the message (no
    ///   From header, a malformed header line), `.other` for anything else it reports.
    public func signature(for message: [UInt8]) throws(DKIMError) -> String {
        guard !message.isEmpty else {
            throw DKIMError(code: .invalidMessage, message: "the message is empty", function: "DKIMSigner.signature")
        }
        if let offset = Self.bareLineFeed(in: message) {
            throw DKIMError(
                code: .invalidMessage,
                message: "the message has a line feed without a carriage return at byte \(offset): "
                    + "DKIM signs the bytes as sent, which end their lines with CRLF",
                function: "DKIMSigner.signature")
        }
        var status = DKIM_STAT(DKIM_STAT_OK)
        guard let handle = strings.newHandle(lib, &status) else {
            throw DKIMError(code: .other, status: status, handle: nil, function: "dkim_sign")
        }
        defer { _ = dkim_free(handle) }
        // dkim_chunk takes a mutable pointer but only reads the bytes.
        status = message.withUnsafeBufferPointer { bytes in
            dkim_chunk(handle, UnsafeMutablePointer(mutating: bytes.baseAddress), bytes.count)
        }
        try check(status, handle, "dkim_chunk")
        try check(dkim_chunk(handle, nil, 0), handle, "dkim_chunk")
        try check(dkim_eom(handle, nil), handle, "dkim_eom")
        var value: UnsafeMutablePointer<UInt8>?
        var length = 0
        try check(dkim_getsighdr_d(handle, Self.fieldName.utf8.count + 2, &value, &length), handle, "dkim_getsighdr_d")
        guard let value else {
            throw DKIMError(code: .other, message: "libopendkim returned no signature", function: "dkim_getsighdr_d")
        }
        return Self.fieldName + ": " + String(decoding: UnsafeBufferPointer(start: value, count: length), as: UTF8.self)
    }

    private static let fieldName = "DKIM-Signature"

    /// Where the first LF not preceded by CR is. libopendkim (without DKIM_LIBFLAGS_FIXCRLF, which
    /// would sign other bytes than the ones sent) takes such a message and signs something no
    /// verifier reproduces.
    private static func bareLineFeed(in message: [UInt8]) -> Int? {
        message.withUnsafeBufferPointer { bytes in
            var previous: UInt8 = 0
            for (offset, byte) in bytes.enumerated() {
                if byte == 10 && previous != 13 { return offset }
                previous = byte
            }
            return nil
        }
    }

    private func check(_ status: DKIM_STAT, _ handle: OpaquePointer, _ function: String) throws(DKIMError) {
        guard status != DKIM_STAT_OK else { return }
        let code: DKIMError.Code = status == DKIM_STAT_SYNTAX ? .invalidMessage : .other
        throw DKIMError(code: code, status: status, handle: handle, function: function)
    }

    private static func checkHeaderNames(_ names: [String]) throws(DKIMError) {
        for name in names {
            let allowed = name.utf8.allSatisfy { byte in
                switch byte {
                case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                    UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "_"):
                    true
                default:
                    false
                }
            }
            guard allowed, !name.isEmpty else {
                throw DKIMError(
                    code: .invalidArgument,
                    message: "\"\(name)\" cannot be a signed header name (letters, digits, - and _ only)",
                    function: "DKIMSigner")
            }
        }
    }

    /// Sets the library's sign list once: libopendkim compiles `DKIM_OPTS_SIGNHDRS` into a regular
    /// expression (from the names and its required From) at once, so the strings need not outlive
    /// the call. The option takes the NULL-terminated array itself as the pointer, and the size of
    /// a pointer as the length.
    private static func setSignedHeaders(_ names: [String], lib: OpaquePointer) throws(DKIMError) {
        let copies = names.map { name in
            let bytes = name.utf8CString
            let copy = UnsafeMutablePointer<CChar>.allocate(capacity: bytes.count)
            bytes.withUnsafeBufferPointer { copy.initialize(from: $0.baseAddress!, count: $0.count) }
            return copy
        }
        defer { copies.forEach { $0.deallocate() } }
        var list: [UnsafePointer<CChar>?] = copies.map { UnsafePointer($0) } + [nil]
        let status = list.withUnsafeMutableBufferPointer { pointers in
            dkim_options(
                lib, DKIM_OP_SETOPT, DKIM_OPTS_SIGNHDRS, pointers.baseAddress, MemoryLayout<UnsafeRawPointer>.size)
        }
        guard status == DKIM_STAT_OK else {
            var error = DKIMError(code: .invalidArgument, status: status, handle: nil, function: "dkim_options")
            error.message = "libopendkim did not take the signed header list (too long?): \(error.message)"
            throw error
        }
    }
}

@available(*, unavailable)
extension DKIMSigner: Sendable {}

/// The C strings `dkim_sign` reads, made once per signer: libopendkim copies them into each
/// handle, so they only have to live as long as the signer.
private final class SigningStrings {
    private let key: UnsafeMutableBufferPointer<UInt8>
    private let selector: [UInt8]
    private let domain: [UInt8]
    private let algorithm: dkim_alg_t

    init(_ dkimKey: DKIMKey) {
        let pem = Array(dkimKey.privateKeyPEM.utf8) + [0]
        key = .allocate(capacity: pem.count)
        _ = key.initialize(from: pem)
        selector = Array(dkimKey.selector.utf8) + [0]
        domain = Array(dkimKey.domain.utf8) + [0]
        algorithm = dkimKey.algorithm.libraryCode
    }

    deinit {
        // The key does not stay in freed memory; libopendkim's own copies are its business.
        key.update(repeating: 0)
        key.deallocate()
    }

    /// A new signing handle, relaxed/relaxed, the whole body. `dkim_sign` reads a key that starts
    /// with "MII" as base64 DER and anything else as PEM text; `privateKeyPEM` is always PEM.
    func newHandle(_ lib: OpaquePointer, _ status: inout DKIM_STAT) -> OpaquePointer? {
        dkim_sign(
            lib, Self.handleID, nil, key.baseAddress, selector, domain, DKIM_CANON_RELAXED, DKIM_CANON_RELAXED,
            algorithm, -1, &status)
    }

    /// Has the key parsed once for every message this process signs (see parsed_keys.h): without
    /// it libopendkim parses the PEM text again for each one, which costs more than the signature.
    /// A key that cannot be remembered is still parsed for each message, as libopendkim does.
    func rememberParsedKey() {
        // The text without its NUL: what `dkim_sign` copies (strlen) and hands to OpenSSL.
        _ = key.withMemoryRebound(to: CChar.self) { text in
            fanout_remember_private_key(text.baseAddress, text.count - 1)
        }
    }

    /// The "id" libopendkim uses only in its own log lines; it may not be NULL.
    private static let handleID: [UInt8] = Array("dkim-signer".utf8) + [0]
}

@available(*, unavailable)
extension SigningStrings: Sendable {}

/// Reads a private key text far enough to give a clear error before libopendkim sees it, and
/// turns the forms libopendkim cannot read into PEM.
private enum PrivateKeyText {
    enum Kind {
        case rsa, ed25519, ec, rsaPSS, other
    }

    static func pem(from text: String, for algorithm: DKIMAlgorithm) throws(DKIMError) -> String {
        let start = text.firstIndex { !$0.isWhitespace } ?? text.endIndex
        let end = text.lastIndex { !$0.isWhitespace }.map(text.index(after:)) ?? start
        let trimmed = String(text[start..<end])
        let expected = algorithm == .rsaSHA256 ? "a PEM RSA private key" : "a PEM Ed25519 private key"
        guard trimmed.hasPrefix("-----BEGIN ") else {
            if algorithm == .ed25519SHA256, let seed = Data(base64Encoded: trimmed), seed.count == 32 {
                return pkcs8PEM(ed25519Seed: Array(seed))
            }
            let also = algorithm == .ed25519SHA256 ? " nor the base64 of a 32-byte Ed25519 seed" : ""
            throw invalid("the DKIM key is not \(expected)\(also)")
        }
        let firstLine = trimmed.prefix { $0 != "\n" && $0 != "\r" }
        let label = firstLine.dropFirst("-----BEGIN ".count).prefix { $0 != "-" }
        guard firstLine.hasSuffix("-----"), let end = trimmed.firstRange(of: "-----END \(label)-----") else {
            throw invalid("the DKIM key is not \(expected) (its BEGIN and END lines do not match)")
        }
        let body = trimmed[firstLine.endIndex..<end.lowerBound]
        if label == "ENCRYPTED PRIVATE KEY" || body.contains("ENCRYPTED") {
            throw invalid("the DKIM key is encrypted: give it unencrypted (openssl pkey -in KEY -out PLAIN)")
        }
        let kind: Kind
        switch label {
        case "RSA PRIVATE KEY":
            kind = .rsa
        case "EC PRIVATE KEY":
            kind = .ec
        case "PRIVATE KEY":
            guard let der = Data(base64Encoded: String(body), options: .ignoreUnknownCharacters),
                let oid = pkcs8AlgorithmOID(Array(der))
            else { throw invalid("the DKIM key is not \(expected) (its PEM body is not a PKCS#8 key)") }
            kind = Self.kind(oid)
        default:
            throw invalid("the DKIM key is a PEM \"\(label)\", not \(expected)")
        }
        switch (kind, algorithm) {
        case (.rsa, .rsaSHA256), (.ed25519, .ed25519SHA256):
            return trimmed + "\n"
        case (.ed25519, .rsaSHA256):
            throw invalid("the DKIM key is an Ed25519 key, but the algorithm is rsa-sha256")
        case (.rsa, .ed25519SHA256):
            throw invalid("the DKIM key is an RSA key, but the algorithm is ed25519-sha256")
        case (.ec, _):
            throw invalid("the DKIM key is an EC (ECDSA) key: DKIM signs with RSA or Ed25519")
        case (.rsaPSS, _):
            throw invalid("the DKIM key is an RSA-PSS key: rsa-sha256 needs a plain RSA key")
        case (.other, _):
            throw invalid("the DKIM key is not \(expected) (unknown key algorithm)")
        }
    }

    private static func invalid(_ message: String) -> DKIMError {
        DKIMError(code: .invalidKey, message: message, function: "DKIMKey")
    }

    private static func kind(_ oid: [UInt8]) -> Kind {
        switch oid {
        case [0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x01]: .rsa // 1.2.840.113549.1.1.1
        case [0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x0A]: .rsaPSS // 1.2.840.113549.1.1.10
        case [0x2B, 0x65, 0x70]: .ed25519 // 1.3.101.112
        case [0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x02, 0x01]: .ec // 1.2.840.10045.2.1
        default: .other
        }
    }

    /// The algorithm OID of a PKCS#8 PrivateKeyInfo: SEQUENCE { INTEGER version,
    /// SEQUENCE { OBJECT IDENTIFIER algorithm, … }, … }.
    static func pkcs8AlgorithmOID(_ der: [UInt8]) -> [UInt8]? {
        var index = 0
        // Reads a tag and a length, leaving `index` at the contents; nil when the tag differs.
        func enter(_ tag: UInt8) -> Int? {
            guard index + 1 < der.count, der[index] == tag else { return nil }
            let first = der[index + 1]
            index += 2
            if first < 0x80 { return Int(first) }
            let count = Int(first & 0x7F)
            guard (1...4).contains(count), index + count <= der.count else { return nil }
            var length = 0
            for byte in der[index..<index + count] { length = length << 8 | Int(byte) }
            index += count
            return length
        }
        guard enter(0x30) != nil, let version = enter(0x02) else { return nil }
        index += version
        guard enter(0x30) != nil, let length = enter(0x06), index + length <= der.count else { return nil }
        return Array(der[index..<index + length])
    }

    /// A PKCS#8 PEM for a raw Ed25519 seed (RFC 8410): the fixed DER prefix, then the 32 bytes.
    static func pkcs8PEM(ed25519Seed seed: [UInt8]) -> String {
        let prefix: [UInt8] = [
            0x30, 0x2E, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2B, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
        ]
        let body = Data(prefix + seed).base64EncodedString()
        return "-----BEGIN PRIVATE KEY-----\n\(body)\n-----END PRIVATE KEY-----\n"
    }
}
