/// How to reach and talk to an SMTP server.
public struct SMTPConfiguration: Sendable {
    /// How the connection is protected.
    public enum Security: String, Sendable, CaseIterable {
        /// Plain SMTP; no TLS at all.
        case none
        /// Plain connect, then STARTTLS, which must succeed (`MAIL_ENCRYPTION=tls`).
        case startTLS
        /// TLS from the first byte, usually port 465 (`MAIL_ENCRYPTION=ssl`).
        case implicitTLS
    }

    public var host: String
    public var port: Int
    public var security: Security
    public var username: String?
    public var password: String?
    public var tls: TLSOptions
    /// The name this client gives in EHLO.
    public var clientName: String
    /// Milliseconds to wait for a connection (and TLS handshake).
    public var connectTimeoutMilliseconds: Int
    /// Milliseconds one message may take, from its first command to the server's final reply.
    public var timeoutMilliseconds: Int

    public init(
        host: String,
        port: Int = 25,
        security: Security = .none,
        username: String? = nil,
        password: String? = nil,
        tls: TLSOptions = TLSOptions(),
        clientName: String = "localhost",
        connectTimeoutMilliseconds: Int = 10_000,
        timeoutMilliseconds: Int = 60_000
    ) {
        self.host = host
        self.port = port
        self.security = security
        self.username = username
        self.password = password
        self.tls = tls
        self.clientName = clientName
        self.connectTimeoutMilliseconds = connectTimeoutMilliseconds
        self.timeoutMilliseconds = timeoutMilliseconds
    }

    var url: String {
        let scheme = security == .implicitTLS ? "smtps" : "smtp"
        let bracketed = host.contains(":") ? "[\(host)]" : host
        return "\(scheme)://\(bracketed):\(port)/\(clientName)"
    }
}

/// One message to send: the envelope and the ready RFC 5322 bytes (CRLF line ends).
public struct SMTPMessage: Sendable {
    public var from: String
    public var recipients: [String]
    public var content: [UInt8]

    public init(from: String, recipients: [String], content: [UInt8]) {
        self.from = from
        self.recipients = recipients
        self.content = content
    }
}

/// A reply from an SMTP server: its code and its text as sent (e.g. `250 2.0.0 Ok: queued as 12`).
public struct SMTPReply: Sendable, Hashable {
    public var code: Int
    public var text: String

    public init(code: Int, text: String) {
        self.code = code
        self.text = text
    }
}
