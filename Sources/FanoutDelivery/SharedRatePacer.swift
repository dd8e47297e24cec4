import Curl
import FanoutCore
import Foundation
import Logging

/// Paces request starts to a rate shared by every process on every host (`SharedRate`, kept in
/// the database): reserves a quarter second's worth of starts at a time and waits for each one's
/// moment. When the database cannot be asked, it paces this process alone at the same rate.
final class SharedRatePacer {
    private let rate: (any SharedRate)?
    private let name: String
    private let perSecond: Double
    /// Seconds' worth of starts that may go at once after a quiet spell.
    private let burst: Double
    private let logger: Logger
    /// Reserved start moments not used yet, on this machine's clock (seconds since 1970).
    private var slots: [Double] = []
    private var last: Double = 0
    /// A pool's pacer (`TransferPacer`): a start further away than this means the account is
    /// paused, and `paused` turns true instead of the pool waiting.
    var maxWait: Double = .infinity
    private(set) var paused = false

    init(rate: (any SharedRate)?, name: String, perSecond: Double, burst: Double = 1, logger: Logger) {
        self.rate = rate
        self.name = name
        self.perSecond = perSecond
        self.burst = burst
        self.logger = logger
    }

    /// Waits until this process may start its next request; false, at once, when that is more
    /// than `maxWait` seconds away (the account is paused: the caller stops for now).
    @discardableResult
    func waitForSlot(maxWait: Double = .infinity) -> Bool {
        if slots.isEmpty { reserve() }
        let wait = slots[0] - Date().timeIntervalSince1970
        if wait > maxWait { return false }
        let moment = slots.removeFirst()
        if wait > 0 { Thread.sleep(forTimeInterval: wait) }
        last = max(moment, Date().timeIntervalSince1970)
        return true
    }

    /// No start for anybody for `seconds` (the platform answered 429).
    func pause(seconds: Double) {
        slots.removeAll()
        do {
            try rate?.pause(name, seconds: seconds)
        } catch {
            logger.debug("shared rate pause not written: \(error)")
        }
        last = max(last, Date().timeIntervalSince1970 + seconds)
    }

    private func reserve() {
        let count = max(1, Int(perSecond / 4))
        let local = Date().timeIntervalSince1970
        var start = max(local, last + 1 / perSecond)
        if let rate {
            do {
                let reserved = try rate.reserve(name, count: count, perSecond: perSecond, burst: burst)
                // The database's moment on this machine's clock.
                start = reserved.start + (local - reserved.now)
            } catch {
                logger.debug("shared rate not reserved, pacing this process alone: \(error)")
            }
        }
        slots = (0..<count).map { start + Double($0) / perSecond }
    }
}

extension SharedRatePacer: TransferPacer {
    func wait() -> Duration? {
        if slots.isEmpty { reserve() }
        let wait = slots[0] - Date().timeIntervalSince1970
        if wait > maxWait {
            paused = true
            return nil
        }
        return wait > 0 ? .milliseconds(Int64((wait * 1000).rounded(.up))) : nil
    }

    func started() {
        guard !slots.isEmpty else { return }
        let moment = slots.removeFirst()
        last = max(moment, Date().timeIntervalSince1970)
    }
}

@available(*, unavailable)
extension SharedRatePacer: Sendable {}
