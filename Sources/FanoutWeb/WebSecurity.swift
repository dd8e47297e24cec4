import FanoutCore
import Foundation
import HTTPTypes
import Hummingbird

/// The operator's sign-in (`FANOUT_WEB_USER` / `FANOUT_WEB_PASSWORD`), checked in constant time.
struct Credentials: Sendable {
    let user: String
    let password: String

    /// The user an `Authorization: Basic …` header names, when it carries these credentials.
    func user(fromAuthorization header: String?) -> String? {
        guard let header, header.lowercased().hasPrefix("basic "),
            let data = Data(base64Encoded: String(header.dropFirst(6)).trimmingCharacters(in: .whitespaces)),
            let text = String(data: data, encoding: .utf8), let colon = text.firstIndex(of: ":")
        else { return nil }
        let givenUser = String(text[..<colon])
        let givenPassword = String(text[text.index(after: colon)...])
        // Both compared whatever the first gives: the time taken tells nothing.
        let userMatches = constantTimeEqual(givenUser, user)
        let passwordMatches = constantTimeEqual(givenPassword, password)
        return userMatches && passwordMatches ? givenUser : nil
    }
}

/// `bytes` random bytes from the system's secure generator, as hex.
func randomToken(bytes: Int) -> String {
    var generator = SystemRandomNumberGenerator()
    return (0..<bytes).map { _ in
        let byte = UInt8.random(in: 0...255, using: &generator)
        return (byte < 16 ? "0" : "") + String(byte, radix: 16)
    }.joined()
}

extension HTTPField.Name {
    static let secFetchSite = HTTPField.Name("Sec-Fetch-Site")!
    static let referrerPolicy = HTTPField.Name("Referrer-Policy")!
    static let xFrameOptions = HTTPField.Name("X-Frame-Options")!
    static let xForwardedHost = HTTPField.Name("X-Forwarded-Host")!
}

/// Why a POST is not from this page (another site, or a page framed elsewhere), or nil.
/// `Sec-Fetch-Site` where the browser sends it, else `Origin` against `Host`.
func crossSiteProblem(_ request: Request) -> String? {
    if let site = request.headers[.secFetchSite], site != "same-origin", site != "none" {
        return "refused: a request from another site (Sec-Fetch-Site: \(site))"
    }
    guard let origin = request.headers[.origin] else { return nil }
    let hosts = [request.head.authority, request.headers[.xForwardedHost]].compactMap { $0 }
    let allowed = hosts.flatMap { ["http://\($0)", "https://\($0)"] }
    if !allowed.contains(origin.lowercased()) && !allowed.contains(origin) {
        return "refused: a request from another origin (\(origin))"
    }
    return nil
}

/// The headers every answer carries: no caching, no sniffing, no framing, scripts and styles
/// only with this answer's nonce.
func secure(_ response: inout Response, nonce: String) {
    response.headers[.contentSecurityPolicy] =
        "default-src 'none'; script-src 'nonce-\(nonce)'; style-src 'nonce-\(nonce)'; img-src 'self' data:; "
        + "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    response.headers[.xContentTypeOptions] = "nosniff"
    response.headers[.referrerPolicy] = "same-origin"
    response.headers[.xFrameOptions] = "DENY"
    response.headers[.cacheControl] = "no-store"
}
