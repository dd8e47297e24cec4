import FanoutCore
import Foundation
import Testing

struct PolicyTests {
    @Test(arguments: [(JobKind.email, 50), (.wallet, 10)])
    func defaultBatchSizes(kind: JobKind, size: Int) {
        #expect(TickPolicy(kind: kind).batchSize == size)
        #expect(TickPolicy(kind: kind, batchSize: 7).batchSize == 7)
    }

    @Test func backoffStepsThenRepeatsTheLast() {
        let policy = TickPolicy(kind: .email)
        #expect(policy.delay(afterAttempts: 1, retryAfter: nil) == .seconds(60))
        #expect(policy.delay(afterAttempts: 2, retryAfter: nil) == .seconds(300))
        #expect(policy.delay(afterAttempts: 3, retryAfter: nil) == .seconds(900))
        #expect(policy.delay(afterAttempts: 4, retryAfter: nil) == .seconds(3600))
        #expect(policy.delay(afterAttempts: 9, retryAfter: nil) == .seconds(3600))
    }

    @Test func retryAfterWinsWhenLonger() {
        let policy = TickPolicy(kind: .wallet)
        #expect(policy.delay(afterAttempts: 1, retryAfter: .seconds(120)) == .seconds(120))
        #expect(policy.delay(afterAttempts: 1, retryAfter: .seconds(5)) == .seconds(60))
    }
}

struct InactivityRuleTests {
    let start = Date(timeIntervalSince1970: 1_800_000_000)
    let rule = InactivityRule(inactiveAfter: .seconds(30 * 60))

    func minutes(_ range: ClosedRange<Int>) -> [Date] {
        range.map { start.addingTimeInterval(Double($0) * 60) }
    }

    @Test func ticksEveryMinuteForLongerThanTheLimitMeanInactive() {
        #expect(rule.isInactive(since: start, now: start.addingTimeInterval(31 * 60), tickStarts: minutes(1...31)))
    }

    @Test func notYetAtTheLimit() {
        #expect(!rule.isInactive(since: start, now: start.addingTimeInterval(29 * 60), tickStarts: minutes(1...29)))
    }

    @Test func fanoutStoppedForAnHourIsNotHeldAgainstTheJob() {
        // Last progress, then no tick for an hour (cron stopped), then this tick.
        #expect(!rule.isInactive(since: start, now: start.addingTimeInterval(60 * 60), tickStarts: []))
        // Ten minutes of ticks, an hour's gap, ten more minutes: 20 minutes of running time.
        let ticks = minutes(1...10) + minutes(71...80)
        #expect(!rule.isInactive(since: start, now: start.addingTimeInterval(80 * 60), tickStarts: ticks))
        // … and 35 minutes of running time in all is too long.
        let more = minutes(1...10) + minutes(71...96)
        #expect(rule.isInactive(since: start, now: start.addingTimeInterval(96 * 60), tickStarts: more))
    }

    @Test func toleranceScalesWithShortLimits() {
        let short = InactivityRule(inactiveAfter: .seconds(3))
        #expect(short.gapTolerance == .seconds(1))
        let ticks = (1...8).map { start.addingTimeInterval(Double($0) * 0.5) }
        #expect(short.isInactive(since: start, now: start.addingTimeInterval(4), tickStarts: ticks))
        #expect(!short.isInactive(since: start, now: start.addingTimeInterval(10), tickStarts: []))
    }
}
