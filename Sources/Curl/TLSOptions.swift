import CCurl

/// How a connection checks the server's certificate, and the client certificate it shows when
/// the server asks for one (APNs: the Pass Type ID certificate).
public struct TLSOptions: Sendable, Hashable {
    /// Verify the certificate chain and host name (the default). Turning this off is for tests.
    public var verifyPeer: Bool
    /// A PEM file of CA certificates to trust instead of the system's store.
    public var caFile: String?
    /// A PEM file of CA certificates to trust besides the system's store.
    public var extraCAFile: String?
    /// The client certificate: a PEM file (with `clientKey`), or a PKCS#12 file holding both.
    public var clientCertificate: ClientCertificate?

    public struct ClientCertificate: Sendable, Hashable {
        public enum Format: String, Sendable { case pem = "PEM", p12 = "P12" }
        public var certificateFile: String
        public var format: Format
        /// The private key's PEM file (PEM certificates only).
        public var keyFile: String?
        /// The key's (or the PKCS#12 file's) password. Handed to libcurl only, never shown.
        public var password: String?

        public init(certificateFile: String, format: Format = .pem, keyFile: String? = nil, password: String? = nil) {
            self.certificateFile = certificateFile
            self.format = format
            self.keyFile = keyFile
            self.password = password
        }
    }

    public init(
        verifyPeer: Bool = true, caFile: String? = nil, extraCAFile: String? = nil,
        clientCertificate: ClientCertificate? = nil
    ) {
        self.verifyPeer = verifyPeer
        self.caFile = caFile
        self.extraCAFile = extraCAFile
        self.clientCertificate = clientCertificate
    }

    /// Where Debian keeps the system's CA certificates, one file per certificate (hashed names).
    static let systemCAPath = "/etc/ssl/certs"

    func apply(to handle: EasyHandle) throws(CurlError) {
        try handle.set(CURLOPT_SSL_VERIFYPEER, verifyPeer ? 1 : 0)
        try handle.set(CURLOPT_SSL_VERIFYHOST, verifyPeer ? 2 : 0)
        if let caFile, !caFile.isEmpty {
            try handle.set(CURLOPT_CAINFO, caFile)
        } else if let extraCAFile, !extraCAFile.isEmpty {
            // OpenSSL trusts both: this file and the system's folder.
            try handle.set(CURLOPT_CAINFO, extraCAFile)
            try handle.set(CURLOPT_CAPATH, Self.systemCAPath)
        }
        if let client = clientCertificate {
            try handle.set(CURLOPT_SSLCERT, client.certificateFile)
            try handle.set(CURLOPT_SSLCERTTYPE, client.format.rawValue)
            try handle.set(CURLOPT_SSLKEY, client.format == .pem ? client.keyFile : nil)
            try handle.set(CURLOPT_KEYPASSWD, client.password)
        } else {
            try handle.set(CURLOPT_SSLCERT, nil as String?)
            try handle.set(CURLOPT_SSLKEY, nil as String?)
            try handle.set(CURLOPT_KEYPASSWD, nil as String?)
        }
    }
}
