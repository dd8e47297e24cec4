import FanoutDelivery
import FanoutStore
import Hummingbird
import Logging

/// `/unsubscribe/TOKEN`, the recipient's, not the operator's: no sign-in, no form token (a mailbox
/// provider's RFC 8058 one-click POST carries neither), not refused by `--read-only`. The signed
/// token is its only authority: a forged or altered one gets 404 and changes nothing. POST
/// suppresses at once (marketing mail of that company); GET asks first.
struct UnsubscribePage: Sendable {
    let settings: WebSettings
    let database: WebDatabase
    let logger: Logger

    func confirm(_ request: Request, _ context: WebContext) async throws -> Response {
        let itemID = try verified(context)
        guard let recipient = try await recipient(itemID) else { throw Self.unknown }
        return Page.html(
            "unsubscribe", title: "Unsubscribe",
            values: ["address": Self.masked(recipient.email), "token": context.parameters.get("token") ?? ""],
            context: context, forOperators: false)
    }

    func unsubscribe(_ request: Request, _ context: WebContext) async throws -> Response {
        let itemID = try verified(context)
        let form = try await Changes.form(request)
        // RFC 8058: the mailbox provider POSTs List-Unsubscribe=One-Click; the page's button
        // sends confirmed=1.
        let oneClick = form["List-Unsubscribe"] == "One-Click"
        let done = try await database.run { connection -> (companyID: UInt64, email: String)? in
            let suppressions = Suppressions(connection: connection)
            guard let recipient = try suppressions.recipient(ofItem: itemID) else { return nil }
            try suppressions.add(
                companyID: recipient.companyID, email: recipient.email, reason: .unsubscribe,
                source: oneClick ? "one-click (item \(itemID))" : "unsubscribe page (item \(itemID))")
            return (recipient.companyID, recipient.email)
        }
        guard let done else { throw Self.unknown }
        logger.notice(
            "unsubscribed \(Self.masked(done.email)) from company \(done.companyID)'s marketing mail (item \(itemID))")
        return Page.html(
            "message", title: "Unsubscribed",
            values: [
                "code": 200, "phrase": "Unsubscribed",
                "text": "\(Self.masked(done.email)) will get no more of this sender's marketing mail.",
            ], context: context, forOperators: false)
    }

    static let unknown = HTTPError(.notFound, message: "This unsubscribe link is not valid.")

    private func verified(_ context: WebContext) throws -> UInt64 {
        guard let unsubscribe = settings.unsubscribe, let text = context.parameters.get("token"),
            let token = UnsubscribeToken.verify(text, secret: unsubscribe.secret)
        else { throw Self.unknown }
        return token.itemID
    }

    private func recipient(_ itemID: UInt64) async throws -> (companyID: UInt64, email: String)? {
        try await database.run { connection -> (companyID: UInt64, email: String)? in
            try Suppressions(connection: connection).recipient(ofItem: itemID).map { ($0.companyID, $0.email) }
        }
    }

    /// "a***@example.com": enough for the person who clicked, not the whole address for anyone
    /// holding the link.
    static func masked(_ email: String) -> String {
        guard let at = email.firstIndex(of: "@"), at > email.startIndex else { return "***" }
        return String(email[email.startIndex]) + "***" + email[at...]
    }
}
