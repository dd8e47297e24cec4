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

/// Delivers wallet items: one HTTP request per item from the job's `.http` template, several at
/// once over kept-alive connections.
public final class WalletDeliverer: Deliverer {
    private let settings: WalletSettings
    private let logger: Logger
    private var templates: [String: WalletTemplate] = [:]
    private var pool: HTTPPool?

    public init(settings: WalletSettings, logger: Logger) {
        self.settings = settings
        self.logger = logger
    }

    public func prepare(_ job: JobRecord) throws(JobFailure) {
        if templates[job.template] == nil {
            do {
                templates[job.template] = try WalletTemplate.load(name: job.template, folder: settings.templatesFolder)
                logger.debug("template loaded", metadata: ["template": "\(job.template)", "job.id": "\(job.id)"])
            } catch {
                throw JobFailure(reason: "Template '\(job.template)' cannot be used: \(error)")
            }
        }
        // A URL that no item could make valid (a setting or the template is wrong) fails the
        // job once instead of every item.
        if let problem = templates[job.template]?.urlProblem(environment: settings.environment) {
            throw JobFailure(reason: "Template '\(job.template)' cannot be used: \(problem)")
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
        guard let template = templates[job.template] else {
            preconditionFailure("deliver called before prepare for template \(job.template)")
        }
        let pool: HTTPPool
        do {
            pool = try self.pool ?? HTTPPool(parallel: settings.parallel, startsPerSecond: settings.rate)
        } catch {
            throw DeliveryUnavailable(message: "cannot set up HTTP: \(error)")
        }
        self.pool = pool
        let environment = settings.environment
        try deliverPooled(
            control: control, server: "wallet API",
            jobID: job.id, logger: logger, waker: pool.waker, dropPool: { self.pool = nil },
            render: { [settings] item in
                let values: [String: Any]
                do throws(ItemDataError) {
                    values = try Self.context(for: item, of: job, environment: environment)
                } catch {
                    return .failure(ItemRejection(reason: error.reason))
                }
                return template.render(values).map { request in
                    HTTPRequest(
                        method: request.method, url: request.url, headers: request.headers,
                        body: Array(request.body.utf8),
                        connectTimeoutMilliseconds: settings.connectTimeoutMilliseconds,
                        timeoutMilliseconds: settings.timeoutMilliseconds,
                        followRedirects: settings.followRedirects, maxResponseBytes: 16 * 1024, tls: settings.tls
                    )
                }
            },
            classify: Self.classify,
            run: { next, completed, settlement, tick throws(CurlError) in
                try pool.run(
                    next: { next().map { ($0.0, $0.1) } }, completed: completed, settlement: settlement, tick: tick)
            }
        )
    }

    /// 2xx delivered; 408, 429 and 5xx later (after Retry-After when given); other statuses fail
    /// the item with the status and an excerpt of the answer. Connect and TLS failures are the
    /// server's, not the item's; a timeout or a broken connection is retried later.
    static func classify(_ result: Result<HTTPResponse, CurlError>) -> ReplyClassification {
        switch result {
        case .success(let response):
            let answer = excerpt(response.bodyText)
            let detail = "HTTP \(response.status)" + (answer.isEmpty ? "" : ": \(answer)")
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
        case .failure(let error):
            return .transferFailure(error)
        }
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
