import CCurl
/// How a connection checks the server's certificate.
public struct TLSOptions: Sendable, Hashable {
    /// Verify the certificate chain and host name (the default). Turning this off is for tests.
    public var verifyPeer: Bool
    /// A PEM file of CA certificates to trust instead of the system's store.
    public var caFile: String?

    public init(verifyPeer: Bool = true, caFile: String? = nil) {
        self.verifyPeer = verifyPeer
        self.caFile = caFile
    }

    func apply(to handle: EasyHandle) throws(CurlError) {
        try handle.set(CURLOPT_SSL_VERIFYPEER, verifyPeer ? 1 : 0)
        try handle.set(CURLOPT_SSL_VERIFYHOST, verifyPeer ? 2 : 0)
        if let caFile, !caFile.isEmpty {
            try handle.set(CURLOPT_CAINFO, caFile)
        }
    }
}
