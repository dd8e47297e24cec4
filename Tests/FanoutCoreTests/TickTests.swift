import FanoutCore
import Foundation
import Logging
import Testing

/// The tick against in-memory fakes: every path from pending to each terminal state.
struct TickTests {
    let store = InMemoryJobStore()
    let deliverer = ScriptedDeliverer()

    func policy(
        _ kind: JobKind = .email, batch: Int? = nil, maxAttempts: Int = 5, inDoubt: InDoubtPolicy = .atLeastOnce,
        inactiveAfter: Duration = .seconds(1800), maxTime: Duration = .seconds(50), claimSlice: Int = 100
    ) -> TickPolicy {
        TickPolicy(
            kind: kind, batchSize: batch, maxTime: maxTime, inactiveAfter: inactiveAfter, stuckAfter: .seconds(600),
            maxAttempts: maxAttempts, checkInterval: .zero, claimSlice: claimSlice, maxClaimSlice: 8, inDoubt: inDoubt)
    }

    @discardableResult
    func tick(_ policy: TickPolicy? = nil, owner: String = "tick-\(UUID().uuidString.prefix(6))") throws -> TickSummary
    {
        let policy = policy ?? self.policy()
        return try Tick(policy: policy, store: store, deliverer: deliverer, owner: owner, logger: Logger(label: "test"))
            .run()
    }

    @Test func emailBatchesOfFiftyThenOfSeven() throws {
        let job = store.addJob(company: 1, items: 120)
        try tick()
        #expect(store.counts(job) == [.sent: 50, .pending: 70])
        #expect(store.status(job) == .processing)
        #expect(store.countersMatch(job))
        try tick(policy(batch: 7))
        #expect(store.counts(job) == [.sent: 57, .pending: 63])
        #expect(store.countersMatch(job))
    }

    /// A worker's drain (`TickHooks.stopRequested`): nothing more is claimed or handed over, what
    /// was delivered is recorded, claimed items never handed over go back to pending uncharged,
    /// and the lease is released.
    @Test func aStopRequestDrainsTheBatch() throws {
        let job = store.addJob(company: 1, items: 20)
        let hooks = TickHooks(stopRequested: { [deliverer] in deliverer.delivered.count >= 3 })
        let summary = try Tick(
            policy: policy(batch: 20, claimSlice: 8), store: store, deliverer: deliverer, owner: "draining",
            logger: Logger(label: "test"), hooks: hooks
        ).run()
        #expect(summary.delivered == 3)
        #expect(store.counts(job) == [.sent: 3, .pending: 17])
        let pending = store.items(of: job).filter { $0.status == .pending }
        #expect(pending.allSatisfy { $0.attempts == 0 && $0.claimedBy == nil && !$0.inDoubt })
        #expect(store.leases.values.allSatisfy { $0.owner == nil })
        #expect(store.countersMatch(job))
    }

    @Test func aBigBatchIsClaimedInGrowingSlicesAsDeliveryAsks() throws {
        let job = store.addJob(company: 1, items: 30)
        let summary = try tick(policy(batch: 25, claimSlice: 2))
        #expect(summary.delivered == 25)
        #expect(store.claimLimits == [2, 4, 8, 8, 3])
        #expect(deliverer.delivered == store.items(of: job).prefix(25).map(\.id))
        #expect(store.counts(job) == [.sent: 25, .pending: 5])
        #expect(store.countersMatch(job))
    }

    @Test func aSliceWithFewerDueItemsEndsTheBatch() throws {
        let job = store.addJob(company: 1, items: 5)
        try tick(policy(batch: 50, claimSlice: 2))
        #expect(store.claimLimits == [2, 4])
        #expect(store.counts(job) == [.sent: 5])
        #expect(store.status(job) == .completed)
    }

    @Test func aCancelledJobGetsNoFurtherSliceClaimed() throws {
        let job = store.addJob(company: 1, items: 20)
        deliverer.beforeItem = { _, index in
            if index == 2 { self.store.change { $0.jobs[job]!.record.status = .cancelled } }
        }
        try tick(policy(batch: 20, claimSlice: 2))
        #expect(store.claimLimits == [2, 4])
        #expect(deliverer.delivered.count == 2)
        #expect(store.counts(job) == [.sent: 2, .cancelled: 18])
        #expect(store.countersMatch(job))
    }

    @Test func walletTwentyFiveItemsInThreeTicks() throws {
        let job = store.addJob(company: 1, kind: .wallet, items: 25)
        var sizes: [Int] = []
        for _ in 0..<3 { sizes.append(try tick(policy(.wallet)).delivered) }
        #expect(sizes == [10, 10, 5])
        #expect(store.status(job) == .completed)
        #expect(store.counts(job) == [.completed: 25])
        #expect(store.countersMatch(job))
    }

    @Test func smallCompanyFinishesInTheSameTickAsBigCompanysFirstBatch() throws {
        let big = store.addJob(company: 1, items: 500)
        let small = store.addJob(company: 2, items: 20)
        let summary = try tick()
        #expect(summary.companies == 2)
        #expect(store.status(small) == .completed)
        #expect(store.counts(big) == [.sent: 50, .pending: 450])
    }

    @Test func companiesRotateByWhenTheyWereLastServed() throws {
        store.addJob(company: 1, items: 500)
        store.addJob(company: 2, items: 500)
        store.addJob(company: 3, items: 500)
        try tick()
        store.advanceClock(60)
        // Company 2 was served most recently now: it must come last next time.
        let key = "email:2"
        store.leases[key]!.servedAt = store.clock
        let order = try store.companiesWithWork(kind: .email).map(\.companyID)
        #expect(order.last == 2)
    }

    @Test func oneJobPerCompanyAndTheWaitingJobIsNotExpired() throws {
        let first = store.addJob(company: 1, items: 60)
        let second = store.addJob(company: 1, items: 5)
        for _ in 0..<40 { store.ticks.append(store.clock); store.advanceClock(60) }
        try tick(policy(inactiveAfter: .seconds(60)))
        #expect(store.counts(first) == [.sent: 50, .pending: 10])
        #expect(store.counts(second) == [.pending: 5])
        #expect(store.status(second) == .pending)
        try tick()
        try tick()
        #expect(store.status(first) == .completed)
        #expect(store.status(second) == .completed)
    }

    @Test func permanentFailureKeepsTheReplyAndTheJobCompletes() throws {
        let job = store.addJob(company: 1, items: 3)
        let failing = store.items(of: job)[1].id
        deliverer.scripts[failing] = [.fail(code: 550)]
        try tick()
        let item = store.items[failing]!
        #expect(item.status == .failed)
        #expect(item.reason == "550 refused")
        #expect(item.code == 550)
        #expect(store.status(job) == .completed)
        #expect(store.jobs[job]!.failed == 1)
        #expect(store.countersMatch(job))
    }

    @Test func transientFailureWaitsForItsRetryTime() throws {
        let job = store.addJob(company: 1, items: 2)
        let flaky = store.items(of: job)[0].id
        deliverer.scripts[flaky] = [.transient(code: 451, retryAfter: nil)]
        try tick()
        #expect(store.items[flaky]!.status == .pending)
        #expect(store.items[flaky]!.attempts == 1)
        #expect(store.items[flaky]!.reason?.contains("451") == true)
        store.advanceClock(30)
        try tick()
        #expect(store.items[flaky]!.attempts == 1, "retried before the backoff's minute")
        store.advanceClock(31)
        try tick()
        #expect(store.items[flaky]!.status == .sent)
        #expect(store.items[flaky]!.attempts == 2)
        #expect(store.status(job) == .completed)
    }

    @Test func retryAfterIsHonoured() throws {
        let job = store.addJob(company: 1, items: 1)
        let item = store.items(of: job)[0].id
        deliverer.scripts[item] = [.transient(code: 429, retryAfter: .seconds(600))]
        try tick()
        store.advanceClock(300)
        try tick()
        #expect(store.items[item]!.status == .pending)
        #expect(store.items[item]!.attempts == 1)
        store.advanceClock(301)
        try tick()
        #expect(store.items[item]!.status == .sent)
    }

    @Test func givesUpAfterMaxAttempts() throws {
        let job = store.addJob(company: 1, items: 1)
        let item = store.items(of: job)[0].id
        deliverer.scripts[item] = Array(repeating: .transient(code: 451, retryAfter: nil), count: 10)
        for _ in 0..<3 {
            try tick(policy(maxAttempts: 3))
            store.advanceClock(7200)
        }
        #expect(store.items[item]!.status == .failed)
        #expect(store.items[item]!.attempts == 3)
        #expect(store.items[item]!.reason?.hasPrefix("Gave up after 3 attempts") == true)
        #expect(store.status(job) == .completed)
    }

    @Test func brokenTemplateFailsTheJobAndOthersGoOn() throws {
        let broken = store.addJob(company: 1, template: "broken", items: 4)
        let good = store.addJob(company: 2, items: 4)
        deliverer.brokenTemplates = ["broken"]
        let summary = try tick()
        #expect(store.status(broken) == .failed)
        #expect(store.jobs[broken]!.record.reason?.contains("broken") == true)
        #expect(store.counts(broken) == [.failed: 4])
        #expect(store.status(good) == .completed)
        #expect(summary.jobsFailed == 1)
        #expect(store.countersMatch(broken))
    }

    @Test func unavailableServerChargesNothing() throws {
        let job = store.addJob(company: 1, items: 10)
        deliverer.unavailableAfter = 3
        let summary = try tick()
        #expect(summary.unavailable == "server gone")
        #expect(store.counts(job) == [.sent: 3, .pending: 7])
        #expect(
            store.items(of: job).filter { $0.status == .pending }.allSatisfy { $0.attempts == 0 && $0.claimedBy == nil }
        )
        #expect(store.countersMatch(job))
    }

    @Test func cancelMidBatchStopsAtTheNextCheck() throws {
        let job = store.addJob(company: 1, items: 20)
        deliverer.beforeItem = { _, index in
            if index == 5 {
                self.store.change {
                    $0.jobs[job]!.record.status = .cancelled
                    $0.jobs[job]!.record.reason = "Wrong list"
                }
            }
        }
        let summary = try tick()
        #expect(deliverer.delivered.count == 5)
        #expect(store.counts(job) == [.sent: 5, .cancelled: 15])
        #expect(store.items(of: job).filter { $0.status == .cancelled }.allSatisfy { $0.reason == "Wrong list" })
        #expect(store.status(job) == .cancelled)
        #expect(store.jobs[job]!.record.reason == "Wrong list")
        #expect(summary.jobsCancelled == 1)
        #expect(store.countersMatch(job))
    }

    @Test func jobCancelledWhileNoTickRanGetsItsItemsCancelled() throws {
        let job = store.addJob(company: 1, items: 8)
        store.jobs[job]!.record.status = .cancelled
        store.jobs[job]!.record.reason = "Stop"
        try tick()
        #expect(store.counts(job) == [.cancelled: 8])
        #expect(deliverer.delivered.isEmpty)
        #expect(store.countersMatch(job))
    }

    @Test func lostLeaseStopsAndWritesNothingMore() throws {
        let job = store.addJob(company: 1, items: 10)
        deliverer.beforeItem = { _, index in
            if index == 4 { self.store.change { $0.leases["email:1"]!.owner = "someone-else" } }
        }
        let summary = try tick()
        #expect(summary.leaseLost)
        #expect(deliverer.delivered.count == 4, "nothing handed over once the lease is seen lost")
        // The 4th outcome was written if the writer got to it before the lease went.
        let sent = store.counts(job)[.sent] ?? 0
        #expect((3...4).contains(sent))
        #expect(store.items(of: job).filter { $0.status == .processing }.count == 10 - sent)
        #expect(store.leases["email:1"]!.owner == "someone-else")
    }

    @Test(arguments: [InDoubtPolicy.atLeastOnce, .atMostOnce])
    func stuckLeaseIsTakenOverAndInFlightItemsAreInDoubt(policy inDoubt: InDoubtPolicy) throws {
        let job = store.addJob(company: 1, items: 10)
        // A tick that died after claiming four items.
        let dead = Lease(kind: .email, companyID: 1, owner: "dead", tookOver: false)
        store.leases["email:1"] = .init(owner: "dead", heartbeat: store.clock, servedAt: nil)
        let claimed = try store.claim(job: store.jobs[job]!.record, limit: 4, lease: dead, marking: 0).items
        // It had handed the first three to the server, not the fourth.
        store.leases["email:1"]!.handedThrough = claimed[2].id
        #expect(try tick().busy == 1, "taken over before stuck-after")
        store.advanceClock(601)
        let summary = try tick(policy(inDoubt: inDoubt))
        #expect(summary.inDoubt == 3)
        let doubted = store.items(of: job).filter(\.inDoubt)
        #expect(doubted.map(\.id) == claimed.prefix(3).map(\.id))
        #expect(store.items[claimed[3].id]!.attempts == 1, "never handed over: charged only for its own delivery")
        if inDoubt == .atLeastOnce {
            #expect(doubted.allSatisfy { $0.status == .sent })
            #expect(store.counts(job) == [.sent: 10])
        } else {
            #expect(doubted.allSatisfy { $0.status == .failed })
            #expect(store.counts(job) == [.sent: 7, .failed: 3])
        }
        #expect(store.status(job) == .completed)
        #expect(store.countersMatch(job))
    }

    @Test func inactiveJobIsExpiredWhileFanoutRuns() throws {
        let job = store.addJob(company: 1, items: 5)
        store.jobs[job]!.record.status = .processing
        store.jobs[job]!.startedAt = store.clock
        store.leases["email:1"] = .init(owner: "hung", heartbeat: store.clock, acquired: store.clock, servedAt: nil)
        for minute in 0..<40 {
            store.advanceClock(60)
            store.leases["email:1"]!.heartbeat = store.clock // alive, but not moving
            if minute == 20 { #expect(try tick().busy == 1, "not yet: 21 minutes") }
        }
        let summary = try tick()
        #expect(summary.jobsFailed == 1)
        #expect(store.status(job) == .failed)
        #expect(store.jobs[job]!.record.reason?.contains("no progress for 30m") == true)
        #expect(store.counts(job) == [.failed: 5])
        #expect(store.countersMatch(job))
    }

    @Test func aHolderThatJustTookTheLeaseIsNotExpiredForTheJobsOldIdleness() throws {
        // The job last moved an hour ago (cron was down); a tick took the lease a minute ago.
        let job = store.addJob(company: 1, items: 5)
        store.jobs[job]!.record.status = .processing
        store.jobs[job]!.startedAt = store.clock
        store.advanceClock(3600)
        store.leases["email:1"] = .init(
            owner: "fresh", heartbeat: store.clock, acquired: store.clock.addingTimeInterval(-60), servedAt: nil)
        #expect(try tick().busy == 1)
        #expect(store.status(job) == .processing)
    }

    @Test func notExpiredWhenFanoutWasNotRunning() throws {
        let job = store.addJob(company: 1, items: 5)
        store.jobs[job]!.record.status = .processing
        store.jobs[job]!.startedAt = store.clock
        store.advanceClock(3600)
        try tick()
        #expect(store.status(job) == .completed)
    }

    @Test func notExpiredWhileWaitingForRetries() throws {
        let job = store.addJob(company: 1, items: 1)
        let item = store.items(of: job)[0].id
        deliverer.scripts[item] = [.transient(code: 451, retryAfter: .seconds(7200))]
        try tick()
        for _ in 0..<40 { store.advanceClock(60); try tick() }
        #expect(store.status(job) == .processing)
        #expect(store.items[item]!.status == .pending)
    }

    @Test func idleTickRecordsNothing() throws {
        let summary = try tick()
        #expect(summary.isIdle)
        #expect(store.ticks.isEmpty)
    }

    @Test func maxTimeStopsStartingNewCompanies() throws {
        let job = store.addJob(company: 1, items: 5)
        let summary = try tick(policy(maxTime: .zero))
        #expect(summary.delivered == 0)
        #expect(store.counts(job) == [.pending: 5])
    }

    @Test func emptyJobCompletes() throws {
        let job = store.addJob(company: 1, items: 0)
        try tick()
        #expect(store.status(job) == .completed)
    }

    // Found by a reviewer with in-memory fakes: each of these failed before the fix.

    @Test func aRetryDueAfterALongWaitIsAttemptedRatherThanExpired() throws {
        let job = store.addJob(company: 1, items: 1)
        let item = store.items(of: job)[0].id
        deliverer.scripts[item] = [.transient(code: 451, retryAfter: .seconds(7200))]
        try tick()
        for _ in 0..<130 { store.advanceClock(60); try tick() }
        #expect(store.items[item]!.status == .sent)
        #expect(store.status(job) == .completed)
    }

    @Test func aServerOutageLongerThanInactiveAfterDoesNotExpireJobs() throws {
        let job = store.addJob(company: 1, items: 3)
        try tick(policy(batch: 1))
        deliverer.unavailableAfter = 0
        for _ in 0..<45 {
            store.advanceClock(60)
            #expect(try tick().unavailable != nil)
        }
        #expect(store.status(job) == .processing)
        #expect(store.counts(job) == [.sent: 1, .pending: 2])
        deliverer.unavailableAfter = nil
        try tick()
        #expect(store.status(job) == .completed)
    }

    @Test func endingACancelledJobOnAStuckLeaseResolvesTheCompanysItemsInDoubt() throws {
        let running = store.addJob(company: 1, items: 6)
        let cancelled = store.addJob(company: 1, items: 2)
        let dead = Lease(kind: .email, companyID: 1, owner: "dead", tookOver: false)
        store.leases["email:1"] = .init(owner: "dead", heartbeat: store.clock, servedAt: nil)
        let claimed = try store.claim(job: store.jobs[running]!.record, limit: 4, lease: dead, marking: 0).items
        store.leases["email:1"]!.handedThrough = claimed[3].id
        store.jobs[cancelled]!.record.status = .cancelled
        store.advanceClock(601)
        try tick()
        try tick()
        #expect(store.counts(running) == [.sent: 6])
        #expect(store.items(of: running).filter(\.inDoubt).count == 4)
        #expect(store.status(running) == .completed)
        #expect(store.counts(cancelled) == [.cancelled: 2])
    }

    @Test func aStoreErrorMidBatchLeavesNoItemStranded() throws {
        let job = store.addJob(company: 1, items: 10)
        deliverer.beforeItem = { _, index in if index == 3 { self.store.change { $0.failNextRecord = true } } }
        #expect(throws: InMemoryJobStore.InjectedFailure.self) { try tick() }
        deliverer.beforeItem = nil
        #expect(store.items(of: job).contains { $0.status == .processing })
        // The lease was kept, so nothing moves until it is taken over; then nothing is stranded.
        #expect(try tick().busy == 1)
        store.advanceClock(601)
        try tick()
        #expect(!store.items(of: job).contains { $0.status == .processing || $0.status == .pending })
        #expect(store.status(job) == .completed)
        #expect(store.countersMatch(job))
    }
}
