import CDKIM

/// An error from DKIM signing: a key or setting that cannot be used, or a message libopendkim
/// refused, with libopendkim's status code and message where it gave one.
///
/// The description never contains the private key.
public struct DKIMError: Error, CustomStringConvertible, Sendable {
    /// What kind of failure this is, stable across versions.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        fileprivate let name: String
        public var description: String { name }

        /// The private key does not parse, is encrypted, or does not fit the algorithm.
        public static let invalidKey = Code(name: "invalidKey")
        /// A domain, selector or header name that cannot go into a signature.
        public static let invalidArgument = Code(name: "invalidArgument")
        /// The library was built without the algorithm (Ed25519 needs OpenSSL 1.1.1 or later).
        public static let unsupported = Code(name: "unsupported")
        /// The message cannot be signed as given (for example, it has no From header).
        public static let invalidMessage = Code(name: "invalidMessage")
        /// Anything else libopendkim reported.
        public static let other = Code(name: "other")
    }

    public var code: Code
    /// libopendkim's `DKIM_STAT_*` code, or -1 when the check that failed is this module's own.
    public var status: Int32
    /// What went wrong, with libopendkim's own message (`dkim_geterror`) when it gave one.
    public var message: String
    /// The libopendkim function or the step that failed (e.g. `dkim_eom`, `DKIMKey`).
    public var function: String

    public init(code: Code, status: Int32 = -1, message: String, function: String) {
        self.code = code
        self.status = status
        self.message = message
        self.function = function
    }

    /// An error for a libopendkim status, with the handle's error text when there is a handle.
    init(code: Code, status: DKIM_STAT, handle: OpaquePointer?, function: String) {
        var message = ""
        if let handle, let text = dkim_geterror(handle) { message = String(cString: text) }
        if message.isEmpty, let text = dkim_getresultstr(status) { message = String(cString: text) }
        self.init(code: code, status: status, message: message, function: function)
    }

    public var description: String {
        if status < 0 { return "\(message) (\(function))" }
        return "\(message) (libopendkim \(status), \(function))"
    }
}
