import Curl
import DKIM
import FanoutCore
import Logging
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#endif

/// Where email goes and who it comes from.
public struct EmailSettings: Sendable {
    public var smtp: SMTPConfiguration
    public var from: Mailbox
    /// The folder holding `email/NAME/…` templates.
    public var templatesFolder: String
    /// Parallel SMTP connections.
    public var connections: Int
    /// Marketing mail's one-click unsubscribe (`FANOUT_UNSUBSCRIBE_URL`); nil: none.
    public var unsubscribe: UnsubscribeSettings?
    /// The DKIM key messages are signed with (`MAIL_DKIM_*`); nil: unsigned.
    public var dkim: DKIMKey?
    /// Marketing mail's `List-Id` (`FANOUT_LIST_ID`, e.g. `Newsletter <news.example.com>`).
    public var listID: String?
    /// Messages a second through this account, all processes together (`MAIL_RATE_PER_SECOND`,
    /// 10; 0: no pacing), and how many may go at once after a quiet spell (`MAIL_RATE_BURST`).
    public var ratePerSecond: Double = 10
    public var rateBurst: Double?
    /// At most this many messages in any 60 minutes / 24 hours through this account, all
    /// processes together (`MAIL_RATE_PER_HOUR`, `MAIL_RATE_PER_DAY`; nil: no limit).
    public var perHour: Int?
    public var perDay: Int?

    /// The sending account, as pauses and pacing are shared under: server, port and user.
    public var account: String {
        "smtp:\(smtp.host):\(smtp.port):\(smtp.username ?? "")"
    }

    public init(smtp: SMTPConfiguration, from: Mailbox, templatesFolder: String, connections: Int = 4) {
        self.smtp = smtp
        self.from = from
        self.templatesFolder = templatesFolder
        self.connections = connections
    }
}

/// Delivers email items over SMTP: renders each item from the job's template, checks the
/// address, and sends through a small pool of reused connections.
public final class EmailDeliverer: Deliverer {
    private let settings: EmailSettings
    private let logger: Logger
    private var composers: [String: EmailComposer] = [:]
    private var pool: SMTPPool?

    private let sharedRate: (any SharedRate)?
    /// The account's pace, all processes together, kept across batches (its reserved starts too):
    /// a start more than 2 s away is a pause, and the pool stops.
    private let pacer: SharedRatePacer?
    /// The permanent refusals of the job this process sends (across its batches).
    private var refusals = RefusalWatch(jobID: 0)

    public init(settings: EmailSettings, logger: Logger, sharedRate: (any SharedRate)? = nil) {
        self.settings = settings
        self.logger = logger
        self.sharedRate = sharedRate
        pacer =
            settings.ratePerSecond > 0
            ? SharedRatePacer(
                rate: sharedRate, name: settings.account, perSecond: settings.ratePerSecond,
                burst: (settings.rateBurst ?? settings.ratePerSecond) / settings.ratePerSecond, maxWait: 2,
                logger: logger) : nil
    }

    /// A paused account (the server throttled it) sends nothing until the pause ends, as read
    /// with the job.
    private func checkPause(_ job: JobRecord) throws(DeliveryUnavailable) {
        guard let left = job.pauseLeft, left > 1 else { return }
        throw DeliveryUnavailable(
            message: Self.pauseText(until: Date().timeIntervalSince1970 + left, reason: job.pauseReason), paused: true)
    }

    /// After a batch whose pace stopped it: the server's pause, as the shared rate says now.
    private func checkServerPause() throws(DeliveryUnavailable) {
        guard let sharedRate, let paused = try? sharedRate.pausedUntil(settings.account),
            paused.until - paused.now > 1
        else { return }
        let until = Date().timeIntervalSince1970 + (paused.until - paused.now)
        throw DeliveryUnavailable(message: Self.pauseText(until: until, reason: paused.reason), paused: true)
    }

    /// "paused by the server until 14:05 (421 4.7.28 …)", in this machine's local time.
    static func pauseText(until: Double, reason: String?) -> String {
        "paused by the server until \(LocalTime.hoursMinutes(until))"
            + (reason.map { " (\(excerpt($0, limit: 120)))" } ?? "")
    }

    private var saidNoUnsubscribe = false

    public func prepare(_ job: JobRecord) throws(JobFailure) {
        if composers[job.template] != nil { return }
        do {
            let template = try EmailTemplate.load(name: job.template, folder: settings.templatesFolder)
            let domain = settings.from.address.split(separator: "@").last.map(String.init) ?? "localhost"
            composers[job.template] = EmailComposer(template: template, from: settings.from, messageIDDomain: domain)
            logger.debug("template loaded", metadata: ["template": "\(job.template)", "job.id": "\(job.id)"])
        } catch {
            throw JobFailure(reason: "Template '\(job.template)' cannot be used: \(error)")
        }
    }

    public func deliver(_ job: JobRecord, control: any DeliveryControl) throws(DeliveryUnavailable) {
        guard let composer = composers[job.template] else {
            preconditionFailure("deliver called before prepare for template \(job.template)")
        }
        try checkPause(job)
        let pool: SMTPPool
        do {
            pool = try self.pool ?? SMTPPool(settings.smtp, connections: settings.connections)
        } catch {
            throw DeliveryUnavailable(message: "cannot set up SMTP: \(error)")
        }
        self.pool = pool
        let messages: JobMessages
        do {
            messages = try JobMessages(job: job, composer: composer, settings: settings)
        } catch {
            throw DeliveryUnavailable(message: "cannot sign with MAIL_DKIM_KEY_FILE: \(error)")
        }
        pacer?.resume()
        let limitReached: String?
        do {
            limitReached = try deliverBatch(job, control: control, pool: pool, messages: messages)
        } catch let error where error.paused {
            // A throttle reply: the account pauses for everybody; the unsent items wait, uncharged.
            let until = (try? sharedRate?.throttled(settings.account, reason: error.message)) ?? nil
            throw DeliveryUnavailable(
                message: Self.pauseText(until: until ?? Date().timeIntervalSince1970 + 60, reason: error.message),
                paused: true)
        }
        if let limitReached { throw DeliveryUnavailable(message: limitReached, paused: true) }
        if pacer?.paused == true { try checkServerPause() }
        // Once a process (a cron tick, or a worker's life), when marketing mail went out without
        // the header Gmail and Yahoo require.
        if settings.unsubscribe == nil, messages.marketing, !saidNoUnsubscribe {
            saidNoUnsubscribe = true
            let line =
                "marketing mail goes out without List-Unsubscribe: FANOUT_UNSUBSCRIBE_URL is not set "
                + "(Gmail and Yahoo require one-click unsubscribe from bulk senders)"
            logger.warning("\(line)", metadata: ["job.id": "\(job.id)"])
        }
    }

    /// One batch through the pool; returns "hourly limit reached until …" when a limit stopped it.
    private func deliverBatch(
        _ job: JobRecord, control: any DeliveryControl, pool: SMTPPool, messages: JobMessages
    ) throws(DeliveryUnavailable) -> String? {
        if refusals.jobID != job.id { refusals = RefusalWatch(jobID: job.id) }
        let refusals = self.refusals
        let quota =
            settings.perHour != nil || settings.perDay != nil
            ? QuotaGate(rate: sharedRate, account: settings.account, perHour: settings.perHour, perDay: settings.perDay)
            : nil
        // What was taken and not sent goes back, however the batch ends.
        defer { quota?.finish() }
        try deliverPooled(
            control: control, server: "SMTP server \(settings.smtp.host):\(settings.smtp.port)",
            jobID: job.id, logger: logger, waker: pool.waker, dropPool: { self.pool = nil },
            render: { item -> Result<SMTPMessage, ItemRejection> in
                messages.message(for: item).map {
                    SMTPMessage(from: $0.envelopeFrom, recipients: [$0.recipient], content: $0.bytes)
                }
            },
            classify: { [refusals] result in
                let classification = Self.classify(result)
                // A list that keeps being refused stops the job instead of burning the sender.
                if let reason = refusals.note(classification) { return .stopJob(reason) }
                return classification
            },
            run: { [pacer] next, completed, settlement, tick throws(CurlError) in
                // Paced for the account by the pool, which drives the transfers in flight while
                // it waits for a start.
                try pool.run(
                    next: { () -> (tag: Int, message: SMTPMessage)? in
                        // The hourly and daily limits, all processes together.
                        if let quota, !quota.take() { return nil }
                        guard let (tag, message) = next() else {
                            quota?.giveBack()
                            return nil
                        }
                        return (tag, message)
                    }, completed: completed, settlement: settlement, pacer: pacer, tick: tick)
            }
        )
        return quota?.reached
    }

    /// A temporary refusal that asks the sender to slow down: 421, 450, 451, 452 or 454 with
    /// rate-limit words or an enhanced code of policy (4.7.x: Gmail's 4.7.28, Postfix's 4.7.1
    /// "too much mail"). Greylisting (4.2.0, "greylisted") and a full mailbox are not.
    static func isThrottle(code: Int, text: String) -> Bool {
        guard [421, 450, 451, 452, 454].contains(code) else { return false }
        let lower = text.lowercased()
        if lower.contains("greylist") || lower.contains("graylist") { return false }
        let words = [
            "rate limit", "rate-limit", "ratelimit", "too many", "too much mail", "throttl", "slow down",
            "limit exceeded", "exceeded the", "sending limit", "quota",
        ]
        return lower.contains(" 4.7.") || lower.hasPrefix("4.7.") || words.contains { lower.contains($0) }
    }

    /// By the SMTP reply, not libcurl's code: 2xx delivered, 5xx failed, 4xx later; failures of
    /// the session (connect, TLS, AUTH, a server gone before MAIL FROM) are nobody's item's.
    static func classify(_ result: Result<SMTPReply, CurlError>) -> ReplyClassification {
        switch result {
        case .success(let reply):
            return .outcome(.delivered, code: reply.code, detail: reply.text)
        case .failure(let error) where isThrottle(code: error.responseCode, text: error.responseText):
            // Wherever it came (greeting, MAIL FROM, after DATA): the account waits, nobody's item fails.
            return .pause("\(error.responseCode) \(excerpt(error.responseText, limit: 200))")
        case .failure(let error):
            let step = error.function
            let beforeMessage =
                step == "SMTP connect" || step == "SMTP EHLO" || step == "SMTP HELO"
                || step == "SMTP STARTTLS" || step == "SMTP AUTH" || step == "SMTP MAIL FROM"
            switch error.code {
            case .rejected where beforeMessage:
                // Refused at the greeting, EHLO, STARTTLS, AUTH or for the sender: every message
                // would be; that is the server's or the settings' fault, not the item's.
                return .session(error)
            case .rejected:
                let reply = error.responseText.isEmpty ? "\(error.responseCode)" : error.responseText
                if (500..<600).contains(error.responseCode) {
                    return .outcome(.failed, code: error.responseCode, detail: reply)
                }
                return .outcome(.transient(retryAfter: nil), code: error.responseCode, detail: reply)
            case .timeout where beforeMessage, .connectionBroken where beforeMessage:
                return .session(error)
            default:
                return .transferFailure(
                    error, detail: "\(error.message) during \(step.replacingPrefix("SMTP ", with: ""))")
            }
        }
    }
}

@available(*, unavailable)
extension EmailDeliverer: Sendable {}

extension String {
    func replacingPrefix(_ prefix: String, with replacement: String) -> String {
        hasPrefix(prefix) ? replacement + dropFirst(prefix.count) : self
    }
}

extension EmailDeliverer {
    /// The header fields a DKIM signature covers, when present: what Gmail and Yahoo check,
    /// and the unsubscribe headers (a signature that does not cover them lets them be changed).
    static let signedHeaders = [
        "From", "To", "Subject", "Date", "Message-ID", "MIME-Version", "Content-Type", "Content-Transfer-Encoding",
        "List-Unsubscribe", "List-Unsubscribe-Post", "Feedback-ID", "List-Id",
    ]
}

/// A job's items turned into the messages a tick sends, on the rendering thread: the company's
/// suppression (read with the claim: never sent), the template with what the job's mail carries
/// (Message-ID, unsubscribe, Feedback-ID, List-Id), the DKIM signature.
struct JobMessages: Sendable {
    let job: JobRecord
    let composer: EmailComposer
    let marketing: Bool
    let mail: EmailComposer.JobMail
    let dateField: String
    let signer: RenderingSigner?

    init(job: JobRecord, composer: EmailComposer, settings: EmailSettings) throws(DKIMError) {
        self.job = job
        self.composer = composer
        marketing = (job.mailType ?? "marketing") != "transactional"
        mail = EmailComposer.JobMail(
            installationID: job.installationID, unsubscribe: marketing ? settings.unsubscribe : nil,
            feedbackID: "\(job.id):\(job.companyID):\(marketing ? "marketing" : "transactional"):fanout",
            listID: marketing ? settings.listID : nil)
        dateField = MIMEMessage.rfc5322Date(Date())
        signer = try settings.dkim.map { key throws(DKIMError) in
            RenderingSigner(try DKIMSigner(key: key, signedHeaders: EmailDeliverer.signedHeaders))
        }
    }

    func message(for item: WorkItem) -> Result<ComposedEmail, ItemRejection> {
        if let suppression = item.suppression {
            return .failure(ItemRejection(reason: WorkItem.suppressedReason(suppression), suppressed: true))
        }
        let composed = composer.compose(
            jobID: job.id, companyID: job.companyID, itemID: item.id, email: item.email ?? "", name: item.name,
            dataJSON: item.data, dateField: dateField, mail: mail)
        guard let signer else { return composed }
        return composed.flatMap { signer.signed($0) }
    }
}

/// A DKIM signer for the rendering thread: `deliverPooled` renders on one thread, one item after
/// another, which is all a libopendkim handle asks (one thread at a time).
final class RenderingSigner: @unchecked Sendable {
    private let signer: DKIMSigner

    init(_ signer: DKIMSigner) {
        self.signer = signer
    }

    /// The message with its `DKIM-Signature` field first.
    func signed(_ email: ComposedEmail) -> Result<ComposedEmail, ItemRejection> {
        do {
            let field = try signer.signature(for: email.bytes)
            var signed = email
            signed.bytes = Array((field + "\r\n").utf8) + email.bytes
            return .success(signed)
        } catch {
            return .failure(ItemRejection(reason: "DKIM signing failed: \(error)"))
        }
    }
}

extension EmailDeliverer {
    /// One item's message exactly as a tick would send it (headers, MIME, DKIM signature), for
    /// `fanout preview` and `fanout test-send`; only Date, boundaries and the signature's time differ.
    public func message(for item: WorkItem, of job: JobRecord) throws(JobFailure) -> Result<
        ComposedEmail, ItemRejection
    > {
        try prepare(job)
        guard let composer = composers[job.template] else { throw JobFailure(reason: "no template") }
        do {
            return try JobMessages(job: job, composer: composer, settings: settings).message(for: item)
        } catch {
            throw JobFailure(reason: "cannot sign with MAIL_DKIM_KEY_FILE: \(error)")
        }
    }
}

/// Watches a job's permanent refusals: more than 20 % of the last 100 messages, or 10 policy
/// refusals (5.7.x: spam, reputation, authentication) in a row, stop the job with a reason a
/// person can act on, before the rest of the list burns the sender's reputation.
final class RefusalWatch {
    let jobID: UInt64
    private var recent: [Bool] = []
    private var policyInARow = 0
    static let window = 100
    static let share = 0.2
    static let policyLimit = 10

    init(jobID: UInt64) {
        self.jobID = jobID
    }

    /// Notes an outcome; the reason to stop the job when a limit is passed.
    func note(_ classification: ReplyClassification) -> String? {
        guard case .outcome(let result, let code, let detail, _) = classification else { return nil }
        let refused: Bool
        switch result {
        case .failed: refused = code.map { (500..<600).contains($0) } ?? false
        case .delivered: refused = false
        default: return nil
        }
        recent.append(refused)
        if recent.count > Self.window { recent.removeFirst() }
        let policy = refused && (detail.contains(" 5.7.") || detail.hasPrefix("5.7."))
        policyInARow = policy ? policyInARow + 1 : 0
        if policyInARow >= Self.policyLimit {
            return "Stopped: \(policyInARow) messages in a row were refused for policy (\(code ?? 0) "
                + "\(excerpt(detail, limit: 120))): the server blocks this sender or content. Fix that, then "
                + "fanout retry email \(jobID)"
        }
        let failures = recent.filter { $0 }.count
        if recent.count == Self.window, Double(failures) > Double(Self.window) * Self.share {
            return "Stopped: \(failures) of the last \(Self.window) messages were refused permanently (last: "
                + "\(code ?? 0) \(excerpt(detail, limit: 120))): check the list, then fanout retry email \(jobID)"
        }
        return nil
    }
}

/// The hourly and daily limits of an SMTP account for one batch: takes sends from the shared
/// count ten at a time; when a limit is reached, says until when.
final class QuotaGate {
    private let rate: (any SharedRate)?
    private let account: String
    private let perHour: Int?
    private let perDay: Int?
    private var allowance = 0
    /// Whether the last `take` came out of a counted allowance (the database could be asked).
    private var lastTakeCounted = false
    /// "hourly limit reached until 14:05 (MAIL_RATE_PER_HOUR=100)", once reached.
    private(set) var reached: String?

    init(rate: (any SharedRate)?, account: String, perHour: Int?, perDay: Int?) {
        self.rate = rate
        self.account = account
        self.perHour = perHour
        self.perDay = perDay
    }

    /// Whether one more message may go now.
    func take() -> Bool {
        if allowance == 0 {
            guard reached == nil else { return false }
            guard let rate, let taken = try? rate.takeSends(account, count: 10, perHour: perHour, perDay: perDay)
            else {
                lastTakeCounted = false
                return true // the database cannot say: the batch goes on, the next one counts again
            }
            allowance = taken.granted
            if taken.granted == 0 {
                let daily =
                    perDay != nil && (perHour == nil || (taken.freeAt ?? 0) - Date().timeIntervalSince1970 > 3600)
                let until = LocalTime.hoursMinutes(taken.freeAt ?? Date().timeIntervalSince1970 + 60)
                reached =
                    daily
                    ? "daily limit reached until \(until) (MAIL_RATE_PER_DAY=\(perDay ?? 0))"
                    : "hourly limit reached until \(until) (MAIL_RATE_PER_HOUR=\(perHour ?? 0))"
                return false
            }
        }
        allowance -= 1
        lastTakeCounted = true
        return true
    }

    /// The send `take` allowed was not made (the batch had no more).
    func giveBack() {
        if lastTakeCounted { allowance += 1 }
        lastTakeCounted = false
    }

    /// Gives the sends taken and not made back to the shared count (at the end of a batch).
    func finish() {
        guard allowance > 0, let rate else { return }
        try? rate.returnSends(account, count: allowance)
        allowance = 0
    }
}
