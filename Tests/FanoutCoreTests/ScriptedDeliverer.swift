import FanoutCore
import Foundation

/// A `Deliverer` whose outcome per item is scripted; records what it delivered.
final class ScriptedDeliverer: Deliverer, @unchecked Sendable {
    // Sendable: each test owns its deliverer and uses it from one thread.
    enum Script { case deliver, fail(code: Int), transient(code: Int, retryAfter: Duration?) }

    var scripts: [UInt64: [Script]] = [:]
    var brokenTemplates: Set<String> = []
    var unavailableAfter: Int?
    /// Runs before each item is handed over (after the continue check): cancel the job, steal
    /// the lease, … (through `InMemoryJobStore.change`: the batch's writer runs beside it).
    var beforeItem: ((WorkItem, Int) -> Void)?
    private(set) var delivered: [UInt64] = []
    private(set) var attempted = 0

    func prepare(_ job: JobRecord) throws(JobFailure) {
        if brokenTemplates.contains(job.template) {
            throw JobFailure(reason: "Template '\(job.template)' cannot be used: broken")
        }
    }

    func deliver(_ job: JobRecord, control: any DeliveryControl) throws(DeliveryUnavailable) {
        var index = -1
        // As the real pools do: the next item only once the last outcome is recorded.
        let written = DispatchSemaphore(value: 0)
        control.onRecorded { written.signal() }
        while control.shouldContinue(), let item = control.nextItem() {
            let ticket = control.recordTicket()
            while !control.isRecorded(ticket) { _ = written.wait(timeout: .now() + .milliseconds(10)) }
            index += 1
            beforeItem?(item, index)
            guard control.handOver(item.id) == .go else { return }
            if let limit = unavailableAfter, attempted >= limit { throw DeliveryUnavailable(message: "server gone") }
            attempted += 1
            let script = scripts[item.id]?.first ?? .deliver
            if scripts[item.id]?.isEmpty == false { scripts[item.id]!.removeFirst() }
            switch script {
            case .deliver:
                delivered.append(item.id)
                control.report(ItemOutcome(itemID: item.id, result: .delivered, code: 250, detail: "250 ok"))
            case .fail(let code):
                control.report(ItemOutcome(itemID: item.id, result: .failed, code: code, detail: "\(code) refused"))
            case .transient(let code, let retryAfter):
                control.report(
                    ItemOutcome(
                        itemID: item.id, result: .transient(retryAfter: retryAfter), code: code, detail: "\(code) later"
                    ))
            }
        }
    }
}
