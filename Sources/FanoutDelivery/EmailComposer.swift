import Foundation

/// A message ready to send.
public struct ComposedEmail: Sendable {
    public var envelopeFrom: String
    public var recipient: String
    public var messageID: String
    public var bytes: [UInt8]
}

/// Why one item cannot be sent (bad address, bad data): a line a person can act on.
public struct ItemRejection: Error, Sendable, CustomStringConvertible {
    public var reason: String
    /// Not the item's fault: its recipient is suppressed (ends `suppressed`, not `failed`).
    public var suppressed = false
    public var description: String { reason }

    public init(reason: String, suppressed: Bool = false) {
        self.reason = reason
        self.suppressed = suppressed
    }
}

/// Turns one item into a message: variables, rendering, address check, MIME.
public struct EmailComposer: Sendable {
    public let template: EmailTemplate
    public let from: Mailbox
    public let messageIDDomain: String
    /// The `From` header's value, the same for every message.
    private let fromField: String

    public init(template: EmailTemplate, from: Mailbox, messageIDDomain: String) {
        self.template = template
        self.from = from
        self.messageIDDomain = messageIDDomain
        self.fromField = MIMEMessage.mailbox(from)
    }

    /// The deterministic Message-ID of an item: a resend after a crash carries the same one, so
    /// receivers can drop the duplicate; the installation id keeps two databases' apart.
    public static func messageID(jobID: UInt64, itemID: UInt64, domain: String, installation: String? = nil) -> String {
        "<fanout.email.\(jobID).\(itemID)\(installation.map { ".\($0)" } ?? "")@\(domain)>"
    }

    /// What a job's mail carries besides its template: the installation id for Message-IDs, and
    /// for marketing mail the one-click unsubscribe (nil: none configured, or transactional).
    struct JobMail: Sendable {
        var installationID: String?
        var unsubscribe: UnsubscribeSettings?
        var feedbackID: String?
        var listID: String?
    }

    public func compose(
        jobID: UInt64, companyID: UInt64, itemID: UInt64, email: String, name: String?, dataJSON: String?, date: Date
    ) -> Result<ComposedEmail, ItemRejection> {
        compose(
            jobID: jobID, companyID: companyID, itemID: itemID, email: email, name: name, dataJSON: dataJSON,
            dateField: MIMEMessage.rfc5322Date(date))
    }

    /// `compose(…date:)` with the `Date` header's value already made (one per batch).
    func compose(
        jobID: UInt64, companyID: UInt64, itemID: UInt64, email: String, name: String?, dataJSON: String?,
        dateField: String, mail: JobMail = JobMail()
    ) -> Result<ComposedEmail, ItemRejection> {
        let recipient: String
        switch EmailAddress.validate(email) {
        case .success(let address): recipient = address
        case .failure(let problem): return .failure(ItemRejection(reason: problem.reason))
        }
        let variables: ItemVariables
        do {
            variables = try EmailContext.variables(
                email: recipient, name: name, dataJSON: dataJSON, jobID: jobID, companyID: companyID, itemID: itemID,
                unsubscribeURL: mail.unsubscribe?.url(itemID: itemID) ?? "")
        } catch {
            return .failure(ItemRejection(reason: error.reason))
        }
        let rendered = template.render(variables)
        let messageID = Self.messageID(
            jobID: jobID, itemID: itemID, domain: messageIDDomain, installation: mail.installationID)
        var extra: [(name: String, value: String)] = []
        if let unsubscribe = mail.unsubscribe {
            extra.append(("List-Unsubscribe", unsubscribe.header(itemID: itemID)))
            extra.append(("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"))
        }
        if let feedbackID = mail.feedbackID { extra.append(("Feedback-ID", feedbackID)) }
        if let listID = mail.listID { extra.append(("List-Id", listID)) }
        let bytes = MIMEMessage.build(
            fromField: fromField, to: Mailbox(address: recipient, name: name),
            subject: rendered.subject, text: rendered.textBytes, html: rendered.htmlBytes,
            messageID: messageID, dateField: dateField, extraHeaders: extra
        )
        return .success(
            ComposedEmail(envelopeFrom: from.address, recipient: recipient, messageID: messageID, bytes: bytes))
    }
}
