import CCurl

/// An error from libcurl, with its code and message and, where the server answered, the
/// protocol's reply code (SMTP or HTTP) and the server's reply text.
public struct CurlError: Error, CustomStringConvertible, Sendable {
    /// What kind of failure this is, stable across versions.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        fileprivate let name: String
        public var description: String { name }

        /// Could not resolve or connect to the server.
        public static let connect = Code(name: "connect")
        /// The TLS handshake or the certificate check failed.
        public static let tls = Code(name: "tls")
        /// The server refused the credentials.
        public static let login = Code(name: "login")
        /// The transfer took longer than allowed.
        public static let timeout = Code(name: "timeout")
        /// The server answered with a refusal (see `responseCode`).
        public static let rejected = Code(name: "rejected")
        /// The connection broke or the server's answer made no sense.
        public static let connectionBroken = Code(name: "connectionBroken")
        /// A setting or argument libcurl did not accept.
        public static let usage = Code(name: "usage")
        /// Anything else.
        public static let other = Code(name: "other")
    }

    public var code: Code
    /// libcurl's `CURLcode` (or `CURLMcode` for multi errors).
    public var curlCode: Int32
    /// libcurl's message for the code, plus its error buffer's detail when it has one.
    public var message: String
    /// The SMTP or HTTP reply code the server gave last, 0 when it gave none.
    public var responseCode: Int
    /// The server's last reply text (SMTP), empty when there is none.
    public var responseText: String
    /// The libcurl function or protocol step that failed (e.g. `curl_easy_perform`, `RCPT TO`).
    public var function: String

    public init(
        code: Code, curlCode: Int32, message: String, responseCode: Int = 0, responseText: String = "", function: String
    ) {
        self.code = code
        self.curlCode = curlCode
        self.message = message
        self.responseCode = responseCode
        self.responseText = responseText
        self.function = function
    }

    init(_ result: CURLcode, detail: String = "", responseCode: Int = 0, responseText: String = "", function: String) {
        var message = String(cString: curl_easy_strerror(result))
        if !detail.isEmpty && detail != message { message += ": \(detail)" }
        self.init(
            code: Self.classify(result),
            curlCode: Int32(result.rawValue),
            message: message,
            responseCode: responseCode,
            responseText: responseText,
            function: function
        )
    }

    static func classify(_ result: CURLcode) -> Code {
        switch result {
        case CURLE_COULDNT_RESOLVE_HOST, CURLE_COULDNT_RESOLVE_PROXY, CURLE_COULDNT_CONNECT:
            .connect
        case CURLE_SSL_CONNECT_ERROR, CURLE_PEER_FAILED_VERIFICATION, CURLE_SSL_CERTPROBLEM,
            CURLE_SSL_CIPHER, CURLE_SSL_CACERT_BADFILE, CURLE_SSL_ISSUER_ERROR, CURLE_USE_SSL_FAILED,
            CURLE_SSL_PINNEDPUBKEYNOTMATCH, CURLE_SSL_INVALIDCERTSTATUS, CURLE_SSL_CRL_BADFILE,
            CURLE_SSL_ENGINE_INITFAILED, CURLE_SSL_SHUTDOWN_FAILED:
            .tls
        case CURLE_LOGIN_DENIED, CURLE_AUTH_ERROR:
            .login
        case CURLE_OPERATION_TIMEDOUT:
            .timeout
        case CURLE_SEND_ERROR, CURLE_RECV_ERROR, CURLE_GOT_NOTHING, CURLE_WEIRD_SERVER_REPLY,
            CURLE_PARTIAL_FILE, CURLE_HTTP2, CURLE_HTTP2_STREAM, CURLE_READ_ERROR:
            .connectionBroken
        case CURLE_UPLOAD_FAILED, CURLE_HTTP_RETURNED_ERROR:
            .rejected
        case CURLE_UNSUPPORTED_PROTOCOL, CURLE_URL_MALFORMAT, CURLE_BAD_FUNCTION_ARGUMENT,
            CURLE_UNKNOWN_OPTION, CURLE_NOT_BUILT_IN:
            .usage
        default:
            .other
        }
    }

    public var description: String {
        var text = "\(message) (curl \(curlCode), \(function))"
        if responseCode != 0 {
            text += responseText.isEmpty ? "; server replied \(responseCode)" : "; server replied: \(responseText)"
        }
        return text
    }
}

/// Turns a libcurl return code into a thrown error.
func check(_ result: CURLcode, _ function: @autoclosure () -> String) throws(CurlError) {
    if result != CURLE_OK { throw CurlError(result, function: function()) }
}

func check(_ result: CURLMcode, _ function: @autoclosure () -> String) throws(CurlError) {
    if result != CURLM_OK {
        throw CurlError(
            code: .other,
            curlCode: Int32(result.rawValue),
            message: String(cString: curl_multi_strerror(result)),
            function: function()
        )
    }
}

extension CurlError {
    /// libcurl could not use the local client certificate or its key (CURLE_SSL_CERTPROBLEM):
    /// the configuration's fault, not the server's.
    public var isClientCertificateProblem: Bool { curlCode == Int32(CURLE_SSL_CERTPROBLEM.rawValue) }
}
