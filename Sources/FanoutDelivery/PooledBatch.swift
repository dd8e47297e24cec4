import Curl
import FanoutCore
import Logging

/// The one delivery loop email and wallet share, over either transfer pool:
///
/// - items are rendered a little ahead on a second thread (`render`); an item whose own data
///   cannot make a message fails at once, uncharged by any transfer;
/// - a message goes to libcurl only once the control allows it (`handOver`: the write-ahead
///   mark), and a connection starts its next transfer only once its last outcome is recorded;
/// - each result is read by `classify`; a failure of the session (no server, bad settings) is
///   no item's: the batch stops and its items go back uncharged.
///
/// `run` is the pool's `run(next:completed:settlement:tick:)`; `server` names what was used in
/// errors ("SMTP server mail.example.com:587"); `dropPool` is called when the pool must not be
/// used again (a session failure, or the pool itself failed).
/// - Throws: `DeliveryUnavailable` naming the server: the batch's items go back uncharged.
func deliverPooled<Message: Sendable, Output>(
    control: any DeliveryControl,
    server: String,
    jobID: UInt64,
    logger: Logger,
    waker: Waker,
    dropPool: () -> Void,
    render: @escaping @Sendable (WorkItem) -> Result<Message, ItemRejection>,
    classify: @escaping (Result<Output, CurlError>) -> ReplyClassification,
    run: (
        _ next: () -> (Int, Message)?,
        _ completed: (Int, Result<Output, CurlError>) -> Void,
        _ settlement: Settlement,
        _ tick: () -> Bool
    ) throws(CurlError) -> Void
) throws(DeliveryUnavailable) {
    var sessionFailure: CurlError?
    var jobFailure: String?
    var pause: String?
    let messages = Prefetcher(source: { control.nextItem() }, capacity: 256, transform: render)
    defer { messages.stop() }
    // Each write wakes the transfer threads waiting for their last outcome to be recorded.
    control.onRecorded { waker.wake() }
    do {
        try run(
            {
                while sessionFailure == nil, jobFailure == nil, pause == nil, control.shouldContinue(),
                    let (item, rendered) = messages.next()
                {
                    switch rendered {
                    case .success(let message):
                        switch control.handOver(item.id) {
                        case .go:
                            return (Int(item.id), message)
                        case .stop:
                            return nil
                        case .skip(let reason):
                            control.report(ItemOutcome(itemID: item.id, result: .suppressed, detail: reason))
                        }
                    case .failure(let rejection):
                        control.report(
                            ItemOutcome(
                                itemID: item.id, result: rejection.suppressed ? .suppressed : .failed,
                                detail: rejection.reason))
                    }
                }
                return nil
            },
            { tag, result in
                switch classify(result) {
                case .outcome(let outcome, let code, let detail, let note):
                    control.report(
                        ItemOutcome(itemID: UInt64(tag), result: outcome, code: code, detail: detail, note: note))
                case .session(let error):
                    if sessionFailure == nil { sessionFailure = error }
                case .stopJob(let reason):
                    if jobFailure == nil { jobFailure = reason }
                case .pause(let reason):
                    if pause == nil { pause = reason }
                }
            },
            Settlement(
                ticket: { control.recordTicket() }, settled: { control.isRecorded($0) },
                proceed: { control.shouldContinue() }, abandon: { control.leaseLost() }),
            { sessionFailure == nil && jobFailure == nil && pause == nil && control.shouldContinue() }
        )
    } catch {
        // Transfers of a failed multi handle may still be attached to it: start afresh.
        dropPool()
        throw DeliveryUnavailable(message: "\(server): transfer engine failed: \(error)")
    }
    if let pause {
        throw DeliveryUnavailable(message: pause, paused: true)
    }
    if let jobFailure {
        dropPool()
        throw DeliveryUnavailable(message: "\(server): \(jobFailure)", jobFailure: jobFailure)
    }
    if let sessionFailure {
        logger.debug(
            "\(server) unavailable: items go back to pending uncharged",
            metadata: ["job.id": "\(jobID)", "curl.code": "\(sessionFailure.curlCode)"])
        dropPool()
        throw DeliveryUnavailable(message: "\(server) unavailable: \(sessionFailure)")
    }
}
