import Curl
import Foundation
import _CryptoExtras

/// A Google service-account key file (`WALLET_GOOGLE_KEY_FILE`, the JSON Google hands out) and
/// the access tokens it mints: an RS256 JWT (RSASSA-PKCS1-v1_5 with SHA-256, as Google's own
/// client libraries sign; not swift-crypto's default PSS, which Google refuses) POSTed to the key
/// file's `token_uri` as a JWT-bearer grant.
public struct GoogleServiceAccount: Sendable {
    public static let scope = "https://www.googleapis.com/auth/wallet_object.issuer"

    public let clientEmail: String
    public let privateKeyID: String
    public let tokenURI: String
    private let key: _RSA.Signing.PrivateKey

    /// The name the token cache keeps its token under: no secret in it.
    public var credentialName: String { "google:\(clientEmail):\(privateKeyID)" }

    /// Reads and checks the key file; the error names the file and what is wrong, never the key.
    public static func load(path: String) throws(CredentialError) -> GoogleServiceAccount {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw CredentialError("WALLET_GOOGLE_KEY_FILE \(path) cannot be read: \(String(cString: strerror(errno)))")
        }
        guard let object = JSONParser.object(data) else {
            throw CredentialError("WALLET_GOOGLE_KEY_FILE \(path) is not a JSON object (a service-account key file)")
        }
        func field(_ name: String) throws(CredentialError) -> String {
            guard let value = object[name] as? String, !value.isEmpty else {
                throw CredentialError(
                    "WALLET_GOOGLE_KEY_FILE \(path) has no \(name): not a service-account key file "
                        + "(IAM → Service accounts → Keys → Add key → JSON)")
            }
            return value
        }
        let pem = try field("private_key")
        let key: _RSA.Signing.PrivateKey
        do {
            key = try _RSA.Signing.PrivateKey(pemRepresentation: pem)
        } catch {
            throw CredentialError("WALLET_GOOGLE_KEY_FILE \(path): its private_key is not an RSA key in PEM form")
        }
        return GoogleServiceAccount(
            clientEmail: try field("client_email"), privateKeyID: (object["private_key_id"] as? String) ?? "",
            tokenURI: try field("token_uri"), key: key)
    }

    /// The signed JWT asking for a token valid an hour from `now` (Unix seconds).
    public func assertion(now: Double) throws(CredentialError) -> String {
        let issued = Int(now)
        var header: [String: Any] = ["alg": "RS256", "typ": "JWT"]
        if !privateKeyID.isEmpty { header["kid"] = privateKeyID }
        let claims: [String: Any] = [
            "iss": clientEmail, "scope": Self.scope, "aud": tokenURI, "iat": issued, "exp": issued + 3600,
        ]
        guard let headerData = try? JSONSerialization.data(withJSONObject: header, options: .sortedKeys),
            let claimsData = try? JSONSerialization.data(withJSONObject: claims, options: .sortedKeys)
        else { throw CredentialError("cannot encode the token request") }
        let input = headerData.base64URLEncoded + "." + claimsData.base64URLEncoded
        do {
            let signature = try key.signature(for: Data(input.utf8), padding: .insecurePKCS1v1_5)
            return input + "." + signature.rawRepresentation.base64URLEncoded
        } catch {
            throw CredentialError("cannot sign the token request with WALLET_GOOGLE_KEY_FILE's key: \(error)")
        }
    }

    /// Mints an access token at the token endpoint.
    /// - Returns: the token and when it expires (Unix seconds).
    public func mint(tls: TLSOptions, timeoutMilliseconds: Int = 30_000) throws(TokenRefusal) -> (
        token: String, expiresAt: Double
    ) {
        let now = Date().timeIntervalSince1970
        let jwt: String
        do {
            jwt = try assertion(now: now)
        } catch {
            throw TokenRefusal(message: error.description, permanent: true)
        }
        // The JWT-bearer grant type, form-encoded; a JWT needs no encoding (base64url and dots).
        let body = "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion=" + jwt
        let request = HTTPRequest(
            method: "POST", url: tokenURI, headers: [("Content-Type", "application/x-www-form-urlencoded")],
            body: Array(body.utf8), timeoutMilliseconds: timeoutMilliseconds, tls: tls)
        let response: HTTPResponse
        do {
            response = try HTTPTransfer().send(request)
        } catch {
            throw TokenRefusal(
                message: "Google's token endpoint \(tokenURI) cannot be reached: \(error)", permanent: false)
        }
        let object = JSONParser.object(response.body) ?? [:]
        if response.status == 200, let token = object["access_token"] as? String, !token.isEmpty {
            let lifetime = JSONParser.number(object["expires_in"]) ?? 3600
            return (token, now + lifetime)
        }
        // Google's own words: "invalid_grant: Invalid JWT Signature." (a revoked or wrong key,
        // or this machine's clock far off).
        let said = [object["error"] as? String, object["error_description"] as? String].compactMap { $0 }
            .joined(separator: ": ")
        let text = said.isEmpty ? excerpt(response.bodyText) : said
        let transient = response.status == 429 || response.status >= 500
        throw TokenRefusal(
            message: "Google's token endpoint answered \(response.status) for WALLET_GOOGLE_KEY_FILE (\(clientEmail)): "
                + text,
            permanent: !transient)
    }
}

/// A credential that cannot be used as configured; the text names the setting, never a secret.
public struct CredentialError: Error, Sendable, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// The token endpoint did not give a token: for good (`invalid_grant`: the job stops with
/// Google's words) or for now (429, 5xx, unreachable).
public struct TokenRefusal: Error, Sendable, CustomStringConvertible {
    public var message: String
    public var permanent: Bool
    public var description: String { message }
}

extension Data {
    /// Base64url without padding (RFC 4648 §5), as JWTs and Fanout's unsubscribe tokens write it.
    var base64URLEncoded: String {
        base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }
}
