import Curl
import FanoutCore
import Foundation
import Logging

/// Where wallet requests go and how.
public struct WalletSettings: Sendable {
    public var templatesFolder: String
    /// Parallel transfers.
    public var parallel: Int
    /// At most this many requests per second across the tick (nil: no cap).
    public var rate: Double?
    public var tls: TLSOptions
    public var connectTimeoutMilliseconds: Int
    public var timeoutMilliseconds: Int
    public var followRedirects: Bool
    /// `WALLET_*` settings (only those), visible to templates as `env.WALLET_…`.
    public var environment: [String: String]
    /// The platforms' credentials as configured (files are read when a job first needs them).
    public var credentials: WalletCredentialSettings = WalletCredentialSettings()

    public init(
        templatesFolder: String, parallel: Int = 8, rate: Double? = nil, tls: TLSOptions = TLSOptions(),
        connectTimeoutMilliseconds: Int = 10_000, timeoutMilliseconds: Int = 30_000, followRedirects: Bool = false,
        environment: [String: String] = [:]
    ) {
        self.templatesFolder = templatesFolder
        self.parallel = parallel
        self.rate = rate
        self.tls = tls
        self.connectTimeoutMilliseconds = connectTimeoutMilliseconds
        self.timeoutMilliseconds = timeoutMilliseconds
        self.followRedirects = followRedirects
        self.environment = environment
    }
}

/// Where the platforms' credentials are: `WALLET_GOOGLE_KEY_FILE`; `WALLET_APNS_CERT` +
/// `WALLET_APNS_KEY` (+ `WALLET_APNS_KEY_PASSWORD`) or `WALLET_APNS_P12`, and `WALLET_APNS_TOPIC`.
public struct WalletCredentialSettings: Sendable {
    public var googleKeyFile: String?
    public var apnsCertificate: String?
    public var apnsKey: String?
    public var apnsKeyPassword: String?
    public var apnsP12: String?
    public var apnsTopic: String?
    /// Requests a second per Google service-account key, all processes together (0: no cap).
    public var googleRate: Double = 20

    public init(
        googleKeyFile: String? = nil, apnsCertificate: String? = nil, apnsKey: String? = nil,
        apnsKeyPassword: String? = nil, apnsP12: String? = nil, apnsTopic: String? = nil
    ) {
        self.googleKeyFile = googleKeyFile
        self.apnsCertificate = apnsCertificate
        self.apnsKey = apnsKey
        self.apnsKeyPassword = apnsKeyPassword
        self.apnsP12 = apnsP12
        self.apnsTopic = apnsTopic
    }

    public var hasGoogle: Bool { googleKeyFile != nil }
    public var hasAPNs: Bool { apnsCertificate != nil || apnsP12 != nil }
}

/// Delivers wallet items: one HTTP request per item from the template for its platform, several
/// at once over kept-alive connections (HTTP/2 streams where the server offers it). Templates
/// marked `# @auth google` get an OAuth access token (minted from the service-account key, kept
/// in the database across runs, minted again once on a 401); `# @auth apns` ones go out with the
/// Pass Type ID certificate. Each platform's answers are read as its documentation says.
public final class WalletDeliverer: Deliverer {
    private let settings: WalletSettings
    private let logger: Logger
    private let tokenCache: (any AccessTokenCache)?
    private let sharedRate: (any SharedRate)?
    private var templates: [String: WalletTemplateSet] = [:]
    private var pool: HTTPPool?
    private var google: GoogleTokenHolder?
    /// The Google credential's rate, all processes together, kept across batches (with its
    /// reserved starts); nil: no cap.
    private var googlePacer: SharedRatePacer?
    private var apns: APNsCredential?
    /// The APNs devices this process pushed for the job it works on: one push per device per
    /// job across its batches (a job's later batches in another process may push a device again).
    private var pushed: (job: UInt64, devices: PushedDevices) = (0, [:])

    public init(
        settings: WalletSettings, logger: Logger, tokenCache: (any AccessTokenCache)? = nil,
        sharedRate: (any SharedRate)? = nil
    ) {
        self.settings = settings
        self.logger = logger
        self.tokenCache = tokenCache
        self.sharedRate = sharedRate
    }

    public func prepare(_ job: JobRecord) throws(JobFailure) {
        if templates[job.template] == nil {
            do {
                templates[job.template] = try WalletTemplateSet.load(
                    name: job.template, folder: settings.templatesFolder)
                logger.debug("template loaded", metadata: ["template": "\(job.template)", "job.id": "\(job.id)"])
            } catch {
                throw JobFailure(reason: "Template '\(job.template)' cannot be used: \(error)")
            }
        }
        guard let set = templates[job.template] else { return }
        // A URL that no item could make valid (a setting or the template is wrong) fails the
        // job once instead of every item.
        for template in set.all {
            if let problem = template.urlProblem(environment: settings.environment) {
                throw JobFailure(reason: "Template '\(job.template)' cannot be used: \(problem)")
            }
        }
        // A credential that is configured but cannot be used fails the job before anything is
        // sent; one that is not configured at all fails only the items that need it.
        let credentials = settings.credentials
        do throws(CredentialError) {
            if set.uses(.google), google == nil, let file = credentials.googleKeyFile {
                let holder = GoogleTokenHolder(account: try GoogleServiceAccount.load(path: file), tls: settings.tls)
                google = holder
                if credentials.googleRate > 0 {
                    googlePacer = SharedRatePacer(
                        rate: sharedRate, name: holder.account.credentialName, perSecond: credentials.googleRate,
                        logger: logger)
                }
            }
            if set.uses(.apns), apns == nil, credentials.hasAPNs {
                apns = try APNsCredential.load(
                    certificateFile: credentials.apnsCertificate, keyFile: credentials.apnsKey,
                    password: credentials.apnsKeyPassword, p12File: credentials.apnsP12, topic: credentials.apnsTopic)
            }
        } catch {
            throw JobFailure(reason: "\(error.description): nothing was sent")
        }
    }

    /// The idempotency key of an item: the same on every attempt, so an API that honours an
    /// `Idempotency-Key` header can drop a resend after a crash.
    public static func idempotencyKey(jobID: UInt64, itemID: UInt64) -> String {
        "fanout-wallet-\(jobID)-\(itemID)"
    }

    static func context(for item: WorkItem, of job: JobRecord, environment: [String: String]) throws(ItemDataError)
        -> [String: Any]
    {
        var context = try EmailContext.dataObject(item.data)
        if let card = item.cardID { context["card_id"] = card }
        if let platform = item.platform { context["platform"] = platform }
        context["job"] = ["id": job.id, "company_id": job.companyID] as [String: Any]
        context["item"] = ["id": item.id] as [String: Any]
        context["idempotency_key"] = Self.idempotencyKey(jobID: job.id, itemID: item.id)
        context["env"] = environment
        return context
    }

    public func deliver(_ job: JobRecord, control: any DeliveryControl) throws(DeliveryUnavailable) {
        guard let set = templates[job.template] else {
            preconditionFailure("deliver called before prepare for template \(job.template)")
        }
        if set.uses(.google), let google {
            do {
                try google.load(from: tokenCache)
            } catch {
                throw DeliveryUnavailable(message: error.message, jobFailure: error.permanent ? error.message : nil)
            }
        }
        let pool: HTTPPool
        do {
            pool = try self.pool ?? HTTPPool(parallel: settings.parallel, startsPerSecond: settings.rate)
        } catch {
            throw DeliveryUnavailable(message: "cannot set up HTTP: \(error)")
        }
        self.pool = pool
        defer {
            // A token minted again during the batch (after a 401) is kept for the next runs.
            if let google, let cache = tokenCache { google.save(to: cache, logger: logger) }
        }
        let factory = WalletMessageFactory(
            set: set, job: job, settings: settings, google: google, apns: apns)
        if pushed.job != job.id { pushed = (job.id, [:]) }
        let exchange = WalletExchange(google: google, pacer: googlePacer, pushed: pushed.devices)
        defer { pushed.devices = exchange.pushed }
        try deliverPooled(
            control: control, server: "wallet API",
            jobID: job.id, logger: logger, waker: pool.waker, dropPool: { self.pool = nil },
            render: { item in factory.message(for: item) },
            classify: Self.classify,
            run: { next, completed, settlement, tick throws(CurlError) in
                // A queued follow-up goes only while the batch goes on (not after a cancel).
                try pool.run(
                    next: { tick() ? exchange.next(next, completed) : nil },
                    completed: { exchange.completed($0, $1, completed) }, settlement: settlement, tick: tick)
            }
        )
    }

    /// An answer as its platform means it (the platform's own words go to the reason).
    static func classify(_ result: Result<WalletResponse, CurlError>) -> ReplyClassification {
        switch result {
        case .success(let answer):
            let classification: ReplyClassification =
                switch answer.auth {
                case .google: classifyGoogle(answer.response)
                case .apns: classifyAPNs(answer.response, previousReason: answer.previousReason)
                case nil: classifyHTTP(answer.response)
                }
            guard let carrier = answer.sharedWith, case .outcome(let result, let code, let detail, _) = classification
            else { return classification }
            let shared = "one push for this device, sent for item \(carrier): \(detail)"
            return .outcome(result, code: code, detail: shared, note: shared)
        case .failure(let error):
            // A client certificate libcurl cannot use is the configuration's fault, not a server's.
            if error.isClientCertificateProblem {
                return .stopJob("the APNs client certificate cannot be used (WALLET_APNS_CERT/KEY/P12): \(error)")
            }
            return .transferFailure(error)
        }
    }

    /// 2xx delivered; 408, 429 and 5xx later (after Retry-After when given); other statuses fail
    /// the item with the status and an excerpt of the answer.
    static func classifyHTTP(_ response: HTTPResponse) -> ReplyClassification {
        let detail = describe(response)
        switch response.status {
        case 200..<300:
            return .outcome(.delivered, code: response.status, detail: detail)
        case 408, 429, 500..<600:
            return .outcome(
                .transient(retryAfter: retryAfter(response.header("Retry-After"))), code: response.status,
                detail: detail)
        default:
            return .outcome(.failed, code: response.status, detail: detail)
        }
    }

    /// Google Wallet: 403 permissionDenied is the configuration's (the service account is not
    /// on the issuer): the job stops; 403 quotaExceeded is a wait; a 401 left after minting again
    /// is the credential's.
    static func classifyGoogle(_ response: HTTPResponse) -> ReplyClassification {
        // Google's error body is read only for the answers that need its words.
        switch response.status {
        case 401:
            let error = GoogleError(response.body)
            return .stopJob(
                "Google Wallet refused the access token of WALLET_GOOGLE_KEY_FILE even when minted again "
                    + "(HTTP 401: \(error.message ?? excerpt(response.bodyText)))")
        case 403:
            let error = GoogleError(response.body)
            if error.reason == "quotaExceeded" || error.reason == "rateLimitExceeded" {
                return .outcome(
                    .transient(retryAfter: retryAfter(response.header("Retry-After")) ?? .seconds(60)), code: 403,
                    detail: describe(response))
            }
            return .stopJob(
                "Google Wallet refused the service account (HTTP 403 \(error.reason ?? error.status ?? "")"
                    + ": \(error.message ?? excerpt(response.bodyText))): add its client_email as a user of the "
                    + "issuer in the Google Pay & Wallet console")
        default:
            return classifyHTTP(response)
        }
    }

    /// APNs: 410 is a device that is gone (never retried; the host app deletes the registration);
    /// a bad or foreign token fails its item; other 400s and 403s are the configuration's; 429
    /// makes that device wait, uncharged, a minute doubling to an hour, and fails it after six
    /// hours of it (`previousReason` says since when and how long the last wait was).
    static func classifyAPNs(_ response: HTTPResponse, previousReason: String?, now: Date = Date())
        -> ReplyClassification
    {
        let object = JSONParser.object(response.body)
        let reason = object?["reason"] as? String ?? ""
        switch response.status {
        case 200..<300:
            return .outcome(.delivered, code: response.status, detail: "HTTP \(response.status)")
        case 410:
            var since = ""
            if let stamp = JSONParser.number(object?["timestamp"]) {
                since = " since " + DeviceWait.format(Date(timeIntervalSince1970: stamp / 1000))
            }
            return .outcome(
                .failed, code: 410,
                detail: "unregistered: APNs 410 \(reason.isEmpty ? "Unregistered" : reason)"
                    + "\(since): delete this device's registration")
        case 400 where reason == "BadDeviceToken" || reason == "DeviceTokenNotForTopic":
            return .outcome(.failed, code: 400, detail: "APNs 400 \(reason)")
        case 400, 403:
            return .stopJob(
                "APNs refused the push configuration (HTTP \(response.status) \(reason)): check WALLET_APNS_TOPIC "
                    + "and the certificate (WALLET_APNS_CERT or WALLET_APNS_P12)")
        case 429:
            let throttled = reason.isEmpty ? "TooManyRequests" : reason
            let last = DeviceWait(previousReason)
            let since = last?.since ?? now
            if now.timeIntervalSince(since) >= DeviceWait.giveUpAfter {
                return .outcome(
                    .failed, code: 429,
                    detail: "APNs 429 \(throttled) for this device for 6 hours since \(DeviceWait.format(since))")
            }
            let wait = min(3600, (last?.seconds ?? 30) * 2)
            return .outcome(
                .waiting(.seconds(wait)), code: 429, detail: DeviceWait.describe(throttled, since: since, seconds: wait)
            )
        case 500..<600:
            return .outcome(
                .transient(retryAfter: retryAfter(response.header("Retry-After"))), code: response.status,
                detail: "APNs \(response.status) \(reason)")
        default:
            return .outcome(.failed, code: response.status, detail: "APNs \(response.status) \(reason)")
        }
    }

    static func describe(_ response: HTTPResponse) -> String {
        let answer = excerpt(response.bodyText)
        return "HTTP \(response.status)" + (answer.isEmpty ? "" : ": \(answer)")
    }

    /// `Retry-After` as seconds or an HTTP date.
    static func retryAfter(_ value: String?) -> Duration? {
        guard let value = value?.trimmingCharacters(in: .whitespaces), !value.isEmpty else { return nil }
        if let seconds = Int(value) { return .seconds(max(0, seconds)) }
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "GMT")
        formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss zzz"
        guard let date = formatter.date(from: value) else { return nil }
        return .seconds(max(0, Int(date.timeIntervalSinceNow.rounded(.up))))
    }
}

@available(*, unavailable)
extension WalletDeliverer: Sendable {}

/// How long an APNs device has been answered 429, kept in its item's reason between tries:
/// "Waiting: APNs 429 TooManyRequests since 2026-12-06T03:10:00Z; next push in 120 s".
struct DeviceWait {
    static let giveUpAfter: TimeInterval = 6 * 3600
    var since: Date
    var seconds: Int

    init?(_ reason: String?) {
        guard let reason, reason.hasPrefix("Waiting: APNs 429"),
            let sinceRange = reason.range(of: " since "), let nextRange = reason.range(of: "; next push in ")
        else { return nil }
        let stamp = String(reason[sinceRange.upperBound..<nextRange.lowerBound])
        guard let date = ISO8601DateFormatter().date(from: stamp),
            let seconds = Int(reason[nextRange.upperBound...].prefix { $0.isNumber })
        else { return nil }
        since = date
        self.seconds = seconds
    }

    static func format(_ date: Date) -> String { ISO8601DateFormatter().string(from: date) }

    static func describe(_ reason: String, since: Date, seconds: Int) -> String {
        "Waiting: APNs 429 \(reason) since \(format(since)); next push in \(seconds) s"
    }
}
