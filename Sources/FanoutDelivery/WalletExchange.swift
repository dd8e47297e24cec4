import Curl
import FanoutCore
import Foundation
import Logging
import Synchronization

/// Devices already pushed for a job: the item that carried each push and its answer.
typealias PushedDevices = [String: (carrier: UInt64, result: Result<HTTPResponse, CurlError>)]

/// One wallet item, ready to send: its request (and the insert an update falls back to), who
/// signs it, and the device it pushes to (APNs items of one job share a push per device).
struct WalletMessage: Sendable {
    var itemID: UInt64
    var attempts: Int
    /// The reason the item's last try left (a device that has been waiting, and since when).
    var previousReason: String?
    var auth: WalletAuth?
    var requests: [HTTPRequest]
    /// The push's address (APNs: the device token's URL); nil when every item is its own.
    var device: String?

    /// Request `index` with the access token, when the template is signed with one.
    func request(_ index: Int, token: String?) -> HTTPRequest {
        var request = requests[index]
        if let token { request.headers.append(("Authorization", "Bearer \(token)")) }
        return request
    }
}

/// An answer with what classifying it needs.
struct WalletResponse: Sendable {
    var response: HTTPResponse
    var auth: WalletAuth?
    var attempts: Int
    var previousReason: String?
    /// The item whose push this item shared (same device).
    var sharedWith: UInt64?
}

/// Turns items into messages (on the rendering thread): the template for the item's platform,
/// its credential, the rendered requests.
struct WalletMessageFactory: Sendable {
    let set: WalletTemplateSet
    let job: JobRecord
    let settings: WalletSettings
    let google: GoogleTokenHolder?
    let apns: APNsCredential?

    func message(for item: WorkItem) -> Result<WalletMessage, ItemRejection> {
        let template: WalletTemplate
        switch set.template(for: item.platform) {
        case .success(let found): template = found
        case .failure(let rejection): return .failure(rejection)
        }
        if template.auth == .google, google == nil {
            return .failure(
                ItemRejection(
                    reason: "\(template.relative) is signed '# @auth google' but WALLET_GOOGLE_KEY_FILE is not set"))
        }
        if template.auth == .apns, apns == nil {
            return .failure(
                ItemRejection(
                    reason: "\(template.relative) is signed '# @auth apns' but no APNs certificate is set "
                        + "(WALLET_APNS_CERT and WALLET_APNS_KEY, or WALLET_APNS_P12, and WALLET_APNS_TOPIC)"))
        }
        let values: [String: Any]
        do throws(ItemDataError) {
            values = try WalletDeliverer.context(for: item, of: job, environment: settings.environment)
        } catch {
            return .failure(ItemRejection(reason: error.reason))
        }
        return template.render(values).map { rendered in
            var tls = settings.tls
            if template.auth == .apns { tls.clientCertificate = apns?.clientCertificate }
            let requests = rendered.map { request in
                var headers = request.headers
                if template.auth == .apns, let topic = apns?.topic,
                    !headers.contains(where: { $0.name.lowercased() == "apns-topic" })
                {
                    headers.append(("apns-topic", topic))
                }
                return HTTPRequest(
                    method: request.method, url: request.url, headers: headers, body: Array(request.body.utf8),
                    connectTimeoutMilliseconds: settings.connectTimeoutMilliseconds,
                    timeoutMilliseconds: settings.timeoutMilliseconds, followRedirects: settings.followRedirects,
                    maxResponseBytes: 16 * 1024, tls: tls)
            }
            return WalletMessage(
                itemID: item.id, attempts: item.attempts, previousReason: item.reason, auth: template.auth,
                requests: requests,
                device: template.auth == .apns ? requests[0].url : nil)
        }
    }
}

/// What happens between the pool and the batch: the access token put on each request; a 401
/// answered by minting once and sending again, a 404 to an update by the insert (and a 409 to
/// that insert by the update again), all within the item's one attempt; and one push per device,
/// its answer shared by the items that wanted the same push. The pool calls `next` and
/// `completed` one at a time, under its lock: a follow-up request is not sent from `completed`
/// (that would hold every other transfer up for a round trip) but queued, and `next` hands it to
/// the pool before any new item, under the item's tag. (Minting a fresh token after a 401 does
/// happen in `completed`: once per stale token.)
final class WalletExchange {
    /// One item's request on the wire: which of its requests, with which token, and what was
    /// tried already (so a 401 is answered once, and an update after a 409 is the last step).
    private struct Step {
        var message: WalletMessage
        var token: String?
        var index = 0
        var refreshed = false
        var afterConflict = false
    }

    private let google: GoogleTokenHolder?
    private var inFlight: [Int: Step] = [:]
    private var followUps: [(tag: Int, step: Step)] = []
    /// Devices with a push in flight, and the items waiting for its answer.
    private var carriers: [String: Int] = [:]
    private var waiting: [Int: [(tag: Int, message: WalletMessage)]] = [:]
    /// Devices pushed for this job by this process (this batch and the earlier ones): the item
    /// that carried the push and its answer.
    private(set) var pushed: PushedDevices
    /// The Google credential's rate, shared with every process; nil: no cap.
    private let pacer: SharedRatePacer?

    init(google: GoogleTokenHolder?, pacer: SharedRatePacer?, pushed: PushedDevices) {
        self.google = google
        self.pacer = pacer
        self.pushed = pushed
    }

    func next(
        _ next: () -> (Int, WalletMessage)?, _ report: (Int, Result<WalletResponse, CurlError>) -> Void
    ) -> (tag: Int, request: HTTPRequest)? {
        if !followUps.isEmpty {
            let (tag, step) = followUps.removeFirst()
            if step.message.auth == .google { pacer?.waitForSlot() }
            inFlight[tag] = step
            return (tag, step.message.request(step.index, token: step.token))
        }
        while let (tag, message) = next() {
            if let device = message.device {
                if let done = pushed[device] {
                    report(tag, Self.answer(message, done.result, sharedWith: done.carrier))
                    continue
                }
                if let carrier = carriers[device] {
                    waiting[carrier, default: []].append((tag, message))
                    continue
                }
                carriers[device] = tag
            }
            if message.auth == .google { pacer?.waitForSlot() }
            let token = message.auth == .google ? google?.current : nil
            inFlight[tag] = Step(message: message, token: token)
            return (tag, message.request(0, token: token))
        }
        return nil
    }

    func completed(
        _ tag: Int, _ result: Result<HTTPResponse, CurlError>,
        _ report: (Int, Result<WalletResponse, CurlError>) -> Void
    ) {
        guard let step = inFlight.removeValue(forKey: tag) else { return }
        if let followUp = followUp(after: step, result) {
            followUps.append((tag, followUp))
            return
        }
        let message = step.message
        let final = result
        if message.auth == .google, case .success(let response) = final, response.status == 429 {
            // Google's limit is per project: everybody waits, not just this process.
            pacer?.pause(seconds: WalletDeliverer.retryAfter(response.header("Retry-After")).map { $0.seconds } ?? 1)
        }
        report(tag, Self.answer(message, final, sharedWith: nil))
        guard let device = message.device else { return }
        carriers[device] = nil
        // A final answer stands for the device's later items; one to try again does not.
        if case .success(let response) = final, response.status < 500, response.status != 429 {
            pushed[device] = (message.itemID, final)
        }
        for duplicate in waiting.removeValue(forKey: tag) ?? [] {
            report(duplicate.tag, Self.answer(duplicate.message, final, sharedWith: message.itemID))
        }
    }

    /// The next request of an item after this answer, if it takes one: its request again with a
    /// token minted once after a 401, the insert after an update's 404, the update after that
    /// insert's 409 (someone inserted it meanwhile); nil when the answer is the item's.
    private func followUp(after step: Step, _ result: Result<HTTPResponse, CurlError>) -> Step? {
        guard case .success(let response) = result else { return nil }
        var next = step
        if step.message.auth == .google, response.status == 401, !step.refreshed, let google,
            let fresh = google.refresh(stale: step.token)
        {
            next.token = fresh
            next.refreshed = true
            return next
        }
        guard step.message.requests.count > 1, !step.afterConflict else { return nil }
        if step.index == 0, response.status == 404 {
            next.index = 1
            return next
        }
        if step.index == 1, response.status == 409 {
            next.index = 0
            next.afterConflict = true
            return next
        }
        return nil
    }

    private static func answer(
        _ message: WalletMessage, _ result: Result<HTTPResponse, CurlError>, sharedWith: UInt64?
    ) -> Result<WalletResponse, CurlError> {
        result.map {
            WalletResponse(
                response: $0, auth: message.auth, attempts: message.attempts,
                previousReason: message.previousReason, sharedWith: sharedWith)
        }
    }
}

@available(*, unavailable)
extension WalletExchange: Sendable {}

/// A Google service account's access token for the batches of one process: read from the cache
/// (the database) or minted before a batch, minted again at most once per stale token when the
/// API answers 401 (from a transfer thread), kept back in the cache after the batch.
final class GoogleTokenHolder: Sendable {
    let account: GoogleServiceAccount
    private let tls: TLSOptions
    private struct State {
        var token: String?
        var expiresAt: Double = 0
        var unsaved = false
    }
    private let state = Mutex(State())
    /// A token with less than this left is minted again.
    static let margin: Double = 300

    init(account: GoogleServiceAccount, tls: TLSOptions) {
        self.account = account
        self.tls = tls
    }

    var current: String? { state.withLock { $0.token } }

    /// Makes sure a token with more than 5 minutes left is at hand.
    func load(from cache: (any AccessTokenCache)?) throws(TokenRefusal) {
        let now = Date().timeIntervalSince1970
        if state.withLock({ $0.token != nil && $0.expiresAt - now > Self.margin }) { return }
        if let cache {
            do {
                if let kept = try cache.token(for: account.credentialName), kept.expiresAt - now > Self.margin {
                    state.withLock { $0 = State(token: kept.token, expiresAt: kept.expiresAt, unsaved: false) }
                    return
                }
            } catch {
                throw TokenRefusal(message: "the access token cache cannot be read: \(error)", permanent: false)
            }
        }
        let minted = try account.mint(tls: tls)
        state.withLock { $0 = State(token: minted.token, expiresAt: minted.expiresAt, unsaved: true) }
    }

    /// A fresh token after `stale` was refused; nil when none can be minted now.
    func refresh(stale: String?) -> String? {
        state.withLock { state in
            if state.token != stale { return state.token }
            guard let minted = try? account.mint(tls: tls) else { return nil }
            state = State(token: minted.token, expiresAt: minted.expiresAt, unsaved: true)
            return minted.token
        }
    }

    /// Keeps a newly minted token for the next runs (best effort: a new one is minted otherwise).
    func save(to cache: any AccessTokenCache, logger: Logger) {
        let minted = state.withLock { state -> (String, Double)? in
            guard state.unsaved, let token = state.token else { return nil }
            state.unsaved = false
            return (token, state.expiresAt)
        }
        guard let (token, expiresAt) = minted else { return }
        do {
            try cache.store(token, expiresAt: expiresAt, for: account.credentialName)
        } catch {
            logger.warning("the new access token could not be kept for the next runs: \(error)")
        }
    }
}

/// Google's error body: `{"error": {"code", "message", "status", "errors": [{"reason"}]}}`.
struct GoogleError {
    var message: String?
    var status: String?
    var reason: String?

    init(_ body: [UInt8]) {
        let object = JSONParser.object(body)
        let error = object?["error"] as? [String: Any]
        message = error?["message"] as? String
        status = error?["status"] as? String
        reason = ((error?["errors"] as? [[String: Any]])?.first?["reason"] as? String)
    }
}
