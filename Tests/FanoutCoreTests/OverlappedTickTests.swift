import FanoutCore
import Foundation
import Logging
import Testing

/// The tick with companies' batches overlapping (`lanes`), against the in-memory fakes: the same
/// outcomes as one company after another, and a batch begun ahead that is not delivered goes
/// back whole.
struct OverlappedTickTests {
    let store = InMemoryJobStore()
    let deliverer = ScriptedDeliverer()

    func tick(batch: Int, hooks: TickHooks = .none) throws -> TickSummary {
        let policy = TickPolicy(
            kind: .email, batchSize: batch, stuckAfter: .seconds(600), checkInterval: .zero, claimSlice: 100)
        // The in-memory store is locked: it can stand for the tick's three connections.
        return try Tick(
            policy: policy, store: store, deliverer: deliverer, owner: "overlapped", logger: Logger(label: "test"),
            hooks: hooks, lanes: { [store] in [store, store] }
        ).run()
    }

    @Test func everyCompanyGetsOneBatch() throws {
        let jobs = (1...12).map { store.addJob(company: UInt64($0), items: 7) }
        let summary = try tick(batch: 5)
        #expect(summary.delivered == 60)
        #expect(summary.jobsAdvanced == 12)
        for job in jobs {
            #expect(store.counts(job) == [.sent: 5, .pending: 2])
            #expect(store.countersMatch(job))
        }
        #expect(store.leases.values.allSatisfy { $0.owner == nil && $0.servedAt != nil })
        // Companies in turn: each one's batch before the next one's.
        let order = deliverer.delivered.map { id in jobs.firstIndex { store.items(of: $0).contains { $0.id == id } }! }
        #expect(order == order.sorted())
    }

    /// The server goes away on the second company's last item, when the third company's batch
    /// was just begun: the tick stops, and the third company's items go back to pending
    /// uncharged, its lease is given back and it keeps its place in the rotation.
    @Test func aBatchBegunAheadAndNotDeliveredGoesBackWhole() throws {
        let jobs = (1...5).map { store.addJob(company: UInt64($0), items: 4) }
        deliverer.unavailableAfter = 7
        let summary = try tick(batch: 10)
        #expect(summary.unavailable == "server gone")
        #expect(store.counts(jobs[0]) == [.sent: 4])
        #expect(store.counts(jobs[1]) == [.sent: 3, .pending: 1])
        for job in jobs[2...] {
            #expect(store.counts(job) == [.pending: 4])
            #expect(store.items(of: job).allSatisfy { $0.attempts == 0 && $0.claimedBy == nil && !$0.inDoubt })
        }
        // Live from its first claim, as any job whose server went away before it was sent.
        #expect(store.status(jobs[2]) == .processing)
        #expect(store.status(jobs[3]) == .pending)
        #expect(store.leases.values.allSatisfy { $0.owner == nil })
        #expect(store.leases["email:3"] != nil, "the third company was begun ahead")
        #expect(store.leases["email:3"]?.servedAt == nil, "and keeps its place in the rotation")
        #expect(jobs.prefix(2).allSatisfy { store.countersMatch($0) })
    }
}
