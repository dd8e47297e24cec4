import Crypto
import FanoutCore
import Foundation

/// The opaque token in a recipient's one-click unsubscribe link: `1.ITEM.MAC`, where ITEM is
/// the email item's id (the address is never in it) and MAC the first 16 bytes (128 bits) of
/// HMAC-SHA256 under `FANOUT_UNSUBSCRIBE_SECRET` of `fanout-unsubscribe.1.ITEM`, base64url
/// without padding. A host application can make or check one itself from this description.
public struct UnsubscribeToken: Sendable, Equatable {
    public let itemID: UInt64

    public init(itemID: UInt64) {
        self.itemID = itemID
    }

    /// The token for this item under `secret`.
    public func text(secret: String) -> String {
        "1.\(itemID).\(Self.mac(itemID: itemID, secret: secret))"
    }

    /// The item a token names, when it was made under `secret` (compared exactly, in constant
    /// time); nil for anything else: a forged, altered or truncated token.
    public static func verify(_ text: String, secret: String) -> UnsubscribeToken? {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3, parts[0] == "1", let itemID = UInt64(parts[1]), String(itemID) == parts[1] else {
            return nil
        }
        return constantTimeEqual(String(parts[2]), mac(itemID: itemID, secret: secret))
            ? UnsubscribeToken(itemID: itemID) : nil
    }

    static func mac(itemID: UInt64, secret: String) -> String {
        let key = SymmetricKey(data: Data(secret.utf8))
        let code = HMAC<SHA256>.authenticationCode(for: Data("fanout-unsubscribe.1.\(itemID)".utf8), using: key)
        return Data(code).prefix(16).base64URLEncoded
    }
}

/// Where marketing mail's one-click unsubscribe goes: `FANOUT_UNSUBSCRIBE_URL` (with `{token}`),
/// the HMAC secret, and an optional mailto address.
public struct UnsubscribeSettings: Sendable {
    public var urlTemplate: String
    public var secret: String
    public var mailto: String?

    public init(urlTemplate: String, secret: String, mailto: String? = nil) {
        self.urlTemplate = urlTemplate
        self.secret = secret
        self.mailto = mailto
    }

    /// The item's one-click URL.
    public func url(itemID: UInt64) -> String {
        urlTemplate.replacingOccurrences(of: "{token}", with: UnsubscribeToken(itemID: itemID).text(secret: secret))
    }

    /// The `List-Unsubscribe` value: the URL, then the mailto address when set.
    public func header(itemID: UInt64) -> String {
        var value = "<\(url(itemID: itemID))>"
        if let mailto { value += ", <mailto:\(mailto)?subject=unsubscribe>" }
        return value
    }
}
