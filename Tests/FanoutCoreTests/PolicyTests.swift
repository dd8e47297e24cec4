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
