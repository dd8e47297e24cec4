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
    /// As a pool's pacer (`TransferPacer`): a start further away than this means the rate is
    /// paused; `paused` turns true and the pool stops instead of waiting.
    private let maxWait: Double
    private(set) var paused = false

    init(
        rate: (any SharedRate)?, name: String, perSecond: Double, burst: Double = 1, maxWait: Double = .infinity,
        logger: Logger
    ) {
        self.rate = rate
        self.name = name
        self.perSecond = perSecond
        self.burst = burst
        self.maxWait = maxWait
        self.logger = logger
    }

    /// Waits (sleeping) until this process may start its next request.
    func waitForSlot() {
        let wait = secondsToNextSlot()
        if wait > 0 { Thread.sleep(forTimeInterval: wait) }
        takeSlot()
    }

    /// A new run: not paused (the next `nextStart` says again).
    func resume() {
        paused = false
    }

    /// Seconds until the next reserved start (negative: it is due), reserving when none is left.
    private func secondsToNextSlot() -> Double {
        if slots.isEmpty { reserve() }
        return slots[0] - Date().timeIntervalSince1970
    }

    private func takeSlot() {
        guard !slots.isEmpty else { return }
        let moment = slots.removeFirst()
        last = max(moment, Date().timeIntervalSince1970)
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
    func nextStart() -> NextStart {
        let wait = secondsToNextSlot()
        if wait > maxWait {
            paused = true
            return .stop
        }
        return wait > 0 ? .after(.milliseconds(Int64((wait * 1000).rounded(.up)))) : .now
    }

    func started() {
        takeSlot()
    }
}

@available(*, unavailable)
extension SharedRatePacer: Sendable {}
