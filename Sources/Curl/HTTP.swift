import CCurl

/// One HTTP request.
public struct HTTPRequest: Sendable {
    public var method: String
    public var url: String
    public var headers: [(name: String, value: String)]
    public var body: [UInt8]
    /// Milliseconds to wait for a connection (and TLS handshake).
    public var connectTimeoutMilliseconds: Int
    /// Milliseconds the whole request may take.
    public var timeoutMilliseconds: Int
    /// Follow 3xx redirects (off by default).
    public var followRedirects: Bool
    /// Bytes of the response body kept; the rest is read and dropped.
    public var maxResponseBytes: Int
    public var tls: TLSOptions

    public init(
        method: String = "GET",
        url: String,
        headers: [(name: String, value: String)] = [],
        body: [UInt8] = [],
        connectTimeoutMilliseconds: Int = 10_000,
        timeoutMilliseconds: Int = 30_000,
        followRedirects: Bool = false,
        maxResponseBytes: Int = 64 * 1024,
        tls: TLSOptions = TLSOptions()
    ) {
        self.method = method
        self.url = url
        self.headers = headers
        self.body = body
        self.connectTimeoutMilliseconds = connectTimeoutMilliseconds
        self.timeoutMilliseconds = timeoutMilliseconds
        self.followRedirects = followRedirects
        self.maxResponseBytes = maxResponseBytes
        self.tls = tls
    }
}

/// An HTTP response: any status, including 4xx and 5xx, is a response, not an error.
public struct HTTPResponse: Sendable {
    public var status: Int
    public var headers: [(name: String, value: String)]
    /// The body, cut at the request's `maxResponseBytes`.
    public var body: [UInt8]
    public var bodyTruncated: Bool

    /// The first header of that name (case-insensitive).
    public func header(_ name: String) -> String? {
        let wanted = name.lowercased()
        return headers.first { $0.name.lowercased() == wanted }?.value
    }

    public var bodyText: String { String(decoding: body, as: UTF8.self) }
}

/// Runs HTTP requests through one reused libcurl easy handle (keep-alive between requests).
///
/// ```swift
/// let http = try HTTPTransfer()
/// let response = try http.send(HTTPRequest(method: "POST", url: url, body: Array(json.utf8)))
/// ```
/// See https://curl.se/libcurl/c/libcurl-tutorial.html
public final class HTTPTransfer {
    let handle: EasyHandle

    public init() throws(CurlError) {
        handle = try EasyHandle()
        // HTTP/2 where a TLS server offers it, HTTP/1.1 otherwise; in a pool, a request waits to
        // share a connection that is being opened rather than opening its own (streams over few
        // connections: APNs treats connection storms as an attack).
        try handle.set(CURLOPT_HTTP_VERSION, Int(CURL_HTTP_VERSION_2TLS))
        try handle.set(CURLOPT_PIPEWAIT, 1)
    }

    /// Only resolves and connects (and does the TLS handshake for https) to the URL's server.
    public func probe(_ url: String, tls: TLSOptions = TLSOptions(), timeoutMilliseconds: Int = 10_000)
        throws(CurlError)
    {
        handle.prepareTransfer()
        handle.freeLists()
        try handle.set(CURLOPT_HTTPHEADER, list: [])
        // A request sent on this transfer afterwards must be a request again.
        defer { try? handle.set(CURLOPT_CONNECT_ONLY, 0) }
        try handle.set(CURLOPT_URL, url)
        try handle.set(CURLOPT_CONNECT_ONLY, 1)
        try handle.set(CURLOPT_CONNECTTIMEOUT_MS, timeoutMilliseconds)
        try tls.apply(to: handle)
        let result = handle.perform()
        if result != CURLE_OK {
            let origin = url.split(separator: "/", maxSplits: 3, omittingEmptySubsequences: false).prefix(3)
                .joined(separator: "/")
            throw CurlError(
                result, detail: handle.errorDetail,
                function: "connect to \(origin)"
            )
        }
    }

    /// Sends the request and waits for the response.
    /// - Throws: `CurlError` when no response arrived (connect, TLS, timeout, broken connection).
    public func send(_ request: HTTPRequest) throws(CurlError) -> HTTPResponse {
        try prepare(request)
        return try finish(handle.perform()).get()
    }

    func prepare(_ request: HTTPRequest) throws(CurlError) {
        handle.prepareTransfer()
        handle.freeLists()
        handle.state.bodyLimit = request.maxResponseBytes
        try handle.set(CURLOPT_URL, request.url)
        try handle.set(CURLOPT_CONNECTTIMEOUT_MS, request.connectTimeoutMilliseconds)
        try handle.set(CURLOPT_TIMEOUT_MS, request.timeoutMilliseconds)
        try handle.set(CURLOPT_FOLLOWLOCATION, request.followRedirects ? 1 : 0)
        try request.tls.apply(to: handle)
        let method = request.method.uppercased()
        if method == "HEAD" {
            try handle.set(CURLOPT_NOBODY, 1)
            try handle.set(CURLOPT_CUSTOMREQUEST, nil as String?)
        } else if request.body.isEmpty && (method == "GET" || method == "DELETE") {
            try handle.set(CURLOPT_HTTPGET, 1)
            try handle.set(CURLOPT_CUSTOMREQUEST, method == "GET" ? nil : method)
        } else {
            try handle.set(CURLOPT_POSTFIELDSIZE_LARGE, offset: Int64(request.body.count))
            // COPYPOSTFIELDS copies, so the bytes need not outlive this call.
            let copied = request.body.withUnsafeBufferPointer { buffer in
                buffer.withMemoryRebound(to: CChar.self) { chars in
                    ccurl_easy_setopt_pointer(
                        handle.raw, CURLOPT_COPYPOSTFIELDS,
                        UnsafeMutableRawPointer(mutating: chars.baseAddress ?? UnsafePointer(bitPattern: 1)))
                }
            }
            try check(copied, "CURLOPT_COPYPOSTFIELDS")
            try handle.set(CURLOPT_CUSTOMREQUEST, method == "POST" ? nil : method)
        }
        // An empty Expect: header stops libcurl from waiting for 100-continue on larger bodies.
        try handle.set(CURLOPT_HTTPHEADER, list: request.headers.map { "\($0.name): \($0.value)" } + ["Expect:"])
    }

    func finish(_ result: CURLcode) -> Result<HTTPResponse, CurlError> {
        let state = handle.state
        guard result == CURLE_OK else {
            return .failure(
                CurlError(
                    result, detail: handle.errorDetail, responseCode: handle.responseCode, function: "HTTP request"))
        }
        var headers: [(name: String, value: String)] = []
        for line in state.headerLines.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            let value = line[line.index(after: colon)...].drop { $0 == " " || $0 == "\t" }
            headers.append((String(line[..<colon]), String(value)))
        }
        return .success(
            HTTPResponse(
                status: handle.responseCode, headers: headers, body: state.body, bodyTruncated: state.bodyTruncated))
    }
}

@available(*, unavailable)
extension HTTPTransfer: Sendable {}
