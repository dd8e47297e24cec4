import CCurl
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A reusable transfer object that a pool can run on a multi handle.
protocol PooledTransfer: AnyObject {
    associatedtype Job
    associatedtype Output
    /// Whether the server takes a transfer only once it has its last byte (SMTP's end of DATA):
    /// then a worker may start its next transfer before its last outcome is settled, holding
    /// that transfer's last byte back until it is (see `runPool`).
    static var holdsEnd: Bool { get }
    var handle: EasyHandle { get }
    func prepare(_ job: Job) throws(CurlError)
    func finish(_ result: CURLcode) -> Result<Output, CurlError>
}

extension SMTPConnection: PooledTransfer {
    static var holdsEnd: Bool { true }
}

extension HTTPTransfer: PooledTransfer {
    static var holdsEnd: Bool { false }
}

/// Runs jobs on `workers` in parallel, pulling the next job whenever a worker is free, until
/// `next` has no more or `tick` says stop; then waits for the transfers already running. With
/// `askAgain`, `next` is asked again after each completion even once it said nil, so a completion
/// may give it a transfer to make (a follow-up request): the pool ends when nothing runs and
/// `next` has none.
///
/// The workers are split over `multis.count` threads (the calling thread is one), each driving
/// its own multi handle: libcurl's per-transfer work is mostly system calls, and one thread is
/// the bound long before the server is. `next`, `completed`, `ticket` and `tick` are called under
/// one lock, never two at once, so they may share state without synchronising it themselves.
///
/// A worker whose transfer completed does not let the server take another message before
/// `settled(ticket)` (called without the lock, with what `ticket()` said right after its outcome
/// was reported): so a caller that records outcomes elsewhere can keep each connection to one
/// outcome the server has and the caller has not recorded. Where the server takes a transfer only
/// at its end (`holdsEnd`, SMTP), the worker starts its next transfer at once and holds its last
/// byte back until then, so the write overlaps the next message's envelope and body; a held
/// transfer whose settlement says not to `proceed` (the batch stopped) fails before its end and
/// is not reported: the server never took it. Otherwise (HTTP) the worker stays idle until then.
/// `Waker.wake` ends a thread's wait for a settlement.
func runPool<Worker: PooledTransfer>(
    workers: [Worker],
    multis: [MultiHandle],
    tickMilliseconds: Int,
    next: () -> (tag: Int, job: Worker.Job)?,
    completed: (Int, Result<Worker.Output, CurlError>) -> Void,
    settlement: Settlement,
    pacer: (any TransferPacer)? = nil,
    askAgain: Bool = false,
    tick: () -> Bool
) throws(CurlError) {
    try withoutActuallyEscaping(next) { next throws(CurlError) in
        try withoutActuallyEscaping(completed) { completed throws(CurlError) in
            try withoutActuallyEscaping(tick) { tick throws(CurlError) in
                let shared = PoolShared(
                    tickMilliseconds: tickMilliseconds, next: next, completed: completed, settlement: settlement,
                    pacer: pacer, askAgain: askAgain, tick: tick
                )
                let groups = multis.indices.map { group in
                    PoolGroup(
                        workers: stride(from: group, to: workers.count, by: multis.count).map { workers[$0] },
                        multi: multis[group],
                        shared: shared
                    )
                }
                var threads: [pthread_t] = []
                for group in groups.dropFirst() where !group.workers.isEmpty {
                    if let thread = startThread(group) {
                        threads.append(thread)
                    } else {
                        // No thread to be had: this thread runs that group's workers too, later.
                        group.run()
                    }
                }
                groups[0].run()
                for thread in threads { pthread_join(thread, nil) }
                if let failure = shared.failure { throw failure }
            }
        }
    }
}

/// How a pool's workers wait for their last outcome to be recorded before the next transfer
/// (see `runPool`). The default waits for nothing.
public struct Settlement: Sendable {
    /// A ticket covering every outcome reported so far.
    public var ticket: @Sendable () -> Int
    /// Whether the outcomes a ticket covers are recorded (or will never be: then go on).
    public var settled: @Sendable (Int) -> Bool
    /// Whether a transfer held at its end may still go to the server once settled (false: the
    /// batch stopped, abandon it unsent).
    public var proceed: @Sendable () -> Bool
    /// Checked before each poll while transfers run: true abandons every transfer still short of
    /// its end (the caller lost the right to deliver: nothing more may reach the server). Cheap:
    /// called once a poll.
    public var abandon: @Sendable () -> Bool

    public init(
        ticket: @escaping @Sendable () -> Int, settled: @escaping @Sendable (Int) -> Bool,
        proceed: @escaping @Sendable () -> Bool = { true }, abandon: @escaping @Sendable () -> Bool = { false }
    ) {
        self.ticket = ticket
        self.settled = settled
        self.proceed = proceed
        self.abandon = abandon
    }

    public static let none = Settlement(ticket: { 0 }, settled: { _ in true })
}

/// Ends the waits of a pool's threads for settlement (call it when outcomes were recorded);
/// safe from any thread.
public final class Waker: @unchecked Sendable {
    // Sendable: curl_multi_wakeup may be called from any thread, and nothing else of the multi
    // handles is touched; holding them keeps them alive as long as the waker.
    private let multis: [MultiHandle]
    init(_ multis: [MultiHandle]) { self.multis = multis }
    public func wake() { for multi in multis { _ = curl_multi_wakeup(multi.wakeable) } }
}

/// When a pool's next transfer may start (`TransferPacer.nextStart`).
public enum NextStart: Sendable, Equatable {
    case now
    /// Not before this long from now: the pool drives its running transfers meanwhile.
    case after(Duration)
    /// Not in this run (the rate is paused): the pool starts nothing more and finishes.
    case stop
}

/// Paces a pool's transfer starts without blocking it: the pool asks when the next start may
/// go (nothing waits under the pool's lock) and says when one started. Both are called under
/// the pool's lock.
public protocol TransferPacer: AnyObject {
    func nextStart() -> NextStart
    /// A transfer started (`next` gave one after `nextStart` said `.now`).
    func started()
}

/// Spaces the starts of transfers at least `1 / perSecond` apart, across every thread of a pool
/// and from one `run` to the next.
final class StartPacer: TransferPacer {
    let spacing: Duration
    /// When the next transfer may start; touched only under the pool's lock.
    var nextAt = ContinuousClock.now

    init(perSecond: Double) {
        spacing = .nanoseconds(Int64(1e9 / max(perSecond, 1e-6)))
    }

    func nextStart() -> NextStart {
        let now = ContinuousClock.now
        return nextAt > now ? .after(nextAt - now) : .now
    }

    /// A transfer started: the next one waits `spacing`.
    func started() {
        nextAt = max(nextAt, ContinuousClock.now) + spacing
    }
}

@available(*, unavailable)
extension StartPacer: Sendable {}

/// What the threads of one `runPool` share; the mutable fields are only touched in `locked`.
private final class PoolShared<Job, Output>: @unchecked Sendable {
    private let mutex = Mutex(())
    let next: () -> (tag: Int, job: Job)?
    let completed: (Int, Result<Output, CurlError>) -> Void
    let settlement: Settlement
    let pacer: (any TransferPacer)?
    let askAgain: Bool
    let tick: () -> Bool
    let interval: Duration
    /// How long a thread waits for network activity before it looks at the clock again.
    let pollMilliseconds: Int
    var lastTick = ContinuousClock.now
    var exhausted = false
    var stopped = false
    var failure: CurlError?

    init(
        tickMilliseconds: Int, next: @escaping () -> (tag: Int, job: Job)?,
        completed: @escaping (Int, Result<Output, CurlError>) -> Void,
        settlement: Settlement, pacer: (any TransferPacer)?, askAgain: Bool, tick: @escaping () -> Bool
    ) {
        interval = .milliseconds(tickMilliseconds)
        pollMilliseconds = min(tickMilliseconds, 100)
        self.next = next
        self.completed = completed
        self.settlement = settlement
        self.pacer = pacer
        self.askAgain = askAgain
        self.tick = tick
    }

    func locked<T: Sendable>(_ body: () -> T) -> T {
        mutex.withLock { _ in body() }
    }

    /// Runs `tick` when its interval has passed; call under the lock.
    func tickIfDue() {
        let now = ContinuousClock.now
        guard now - lastTick >= interval else { return }
        lastTick = now
        if !stopped && !tick() { stopped = true }
    }
}

/// The workers one thread drives on its own multi handle.
private final class PoolGroup<Worker: PooledTransfer>: Runnable, @unchecked Sendable {
    // Sendable: a group is used by exactly one thread, and `runPool` joins it before returning.
    let workers: [Worker]
    let multi: MultiHandle
    let shared: PoolShared<Worker.Job, Worker.Output>

    init(workers: [Worker], multi: MultiHandle, shared: PoolShared<Worker.Job, Worker.Output>) {
        self.workers = workers
        self.multi = multi
        self.shared = shared
    }

    func run() {
        var idle = Array(workers.reversed())
        var running: [ObjectIdentifier: (worker: Worker, tag: Int)] = [:]
        var starting: [(worker: Worker, tag: Int, job: Worker.Job)] = []
        /// Workers whose last transfer ended, until its outcome is recorded (workers that do not
        /// hold their next transfer's end).
        var settling: [(worker: Worker, ticket: Int)] = []
        /// Holding workers: the ticket of the last outcome each reported, until it is settled.
        var unsettled: [ObjectIdentifier: Int] = [:]
        var abandoned = false
        while true {
            if !settling.isEmpty {
                settling.removeAll { entry in
                    guard shared.settlement.settled(entry.ticket) else { return false }
                    idle.append(entry.worker)
                    return true
                }
            }
            if !unsettled.isEmpty {
                releaseSettled(&unsettled, running)
            }
            // How long until the pacer gives the next slot, when an idle worker waits for one.
            var paced: Duration? = nil
            shared.locked {
                while !shared.exhausted, !shared.stopped, starting.count < idle.count {
                    switch shared.pacer?.nextStart() ?? .now {
                    case .now: break
                    case .after(let wait): paced = wait
                    case .stop: shared.exhausted = true
                    }
                    if paced != nil || shared.exhausted { break }
                    guard let (tag, job) = shared.next() else { shared.exhausted = true; break }
                    shared.pacer?.started()
                    starting.append((idle[idle.count - 1 - starting.count], tag, job))
                }
            }
            var refused: [(Int, CurlError)] = []
            for (worker, tag, job) in starting {
                do {
                    try worker.prepare(job)
                    // Its last outcome not recorded yet: the server gets this one's end later.
                    if unsettled[ObjectIdentifier(worker)] != nil { worker.handle.state.endHold = .holding }
                    try multi.add(worker.handle)
                    idle.removeAll { $0 === worker }
                    running[ObjectIdentifier(worker.handle)] = (worker, tag)
                } catch {
                    refused.append((tag, error))
                }
            }
            starting.removeAll(keepingCapacity: true)
            if !refused.isEmpty {
                shared.locked { for (tag, error) in refused { shared.completed(tag, .failure(error)) } }
            }
            if running.isEmpty {
                let done = shared.locked { shared.exhausted || shared.stopped }
                if done { break }
                if settling.isEmpty && paced == nil { continue }
            }
            var timeout = shared.pollMilliseconds
            if let paced { timeout = min(timeout, max(1, Int((paced / .milliseconds(1)).rounded(.up)))) }
            // Held transfers wait for a write (its waker ends the poll), not for their sockets.
            let waitForWrite =
                !settling.isEmpty || running.values.contains { $0.worker.handle.state.endHold == .paused }
            let finished: [(EasyHandle, CURLcode)]
            do {
                finished = try multi.poll(timeoutMilliseconds: timeout, waitWhenIdle: waitForWrite || paced != nil) {
                    // Lost the right to deliver (checked after every wait, before libcurl sends
                    // more: the wait is where a SIGSTOP finds the thread): whatever has not
                    // reached its end never will.
                    guard Worker.holdsEnd, !abandoned, !running.isEmpty, shared.settlement.abandon() else { return }
                    abandoned = true
                    for (worker, _) in running.values { worker.handle.abortHeldEnd() }
                }
            } catch {
                // The multi handle itself failed: its transfers are lost; the others finish. A
                // transfer short of its end must stay so: cleaning the handle up would send SMTP's
                // end of DATA for it.
                if Worker.holdsEnd { for (worker, _) in running.values { worker.handle.shutDownConnection() } }
                shared.locked {
                    if shared.failure == nil { shared.failure = error }
                    shared.stopped = true
                }
                break
            }
            var results: [(Int, Result<Worker.Output, CurlError>)] = []
            var ended: [Worker] = []
            for (handle, result) in finished {
                guard let (worker, tag) = running.removeValue(forKey: ObjectIdentifier(handle)) else { continue }
                let hold = handle.state.endHold
                if hold == .aborted || (hold == .paused && result != CURLE_OK) {
                    // Failed short of its end (abandoned, or timed out while held for a slow
                    // write): the server never took it, and it is nobody's fault: not reported,
                    // so its item goes back uncharged.
                    idle.append(worker)
                    continue
                }
                ended.append(worker)
                results.append((tag, worker.finish(result)))
            }
            let ticket = shared.locked {
                for (tag, result) in results { shared.completed(tag, result) }
                if shared.askAgain && !results.isEmpty { shared.exhausted = false }
                shared.tickIfDue()
                return ended.isEmpty ? 0 : shared.settlement.ticket()
            }
            for worker in ended {
                if Worker.holdsEnd {
                    unsettled[ObjectIdentifier(worker)] = ticket
                    idle.append(worker)
                } else {
                    settling.append((worker, ticket))
                }
            }
        }
    }

    /// Forgets settled tickets; a transfer held at its end goes on once its worker's last outcome
    /// is settled, or is abandoned unsent (not reported) when the settlement says stop.
    private func releaseSettled(
        _ unsettled: inout [ObjectIdentifier: Int], _ running: [ObjectIdentifier: (worker: Worker, tag: Int)]
    ) {
        var proceed: Bool?
        for (key, ticket) in unsettled where shared.settlement.settled(ticket) {
            unsettled.removeValue(forKey: key)
            guard let entry = running.first(where: { ObjectIdentifier($0.value.worker) == key }) else { continue }
            guard entry.value.worker.handle.state.endHold.isHolding else { continue }
            if proceed == nil { proceed = shared.settlement.proceed() }
            if proceed == true {
                entry.value.worker.handle.releaseHeldEnd()
            } else {
                // Fails at its next read, before the end: reported by nobody (see `run`).
                entry.value.worker.handle.abortHeldEnd()
            }
        }
    }
}

private protocol Runnable: AnyObject, Sendable {
    func run()
}

private final class ThreadBody {
    let runnable: any Runnable
    init(_ runnable: any Runnable) { self.runnable = runnable }
}

/// Starts a joinable thread that runs `runnable`; nil when the system refuses one.
private func startThread(_ runnable: any Runnable) -> pthread_t? {
    var thread = pthread_t()
    let context = Unmanaged.passRetained(ThreadBody(runnable)).toOpaque()
    let started = pthread_create(
        &thread, nil,
        { context in
            Unmanaged<ThreadBody>.fromOpaque(context!).takeRetainedValue().runnable.run()
            return nil
        }, context)
    if started != 0 {
        Unmanaged<ThreadBody>.fromOpaque(context).release()
        return nil
    }
    return thread
}

/// The multi handles (one per thread) that drive `transfers` transfers: `threads` of them, or by
/// default one per two transfers, at most one per core.
func multiHandles(transfers: Int, threads: Int?) throws(CurlError) -> [MultiHandle] {
    let cores = max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))
    let count = min(transfers, max(1, threads ?? min(cores, transfers / 2)))
    var multis: [MultiHandle] = []
    for _ in 0..<count { multis.append(try MultiHandle()) }
    return multis
}

/// Sends messages over several SMTP connections at once (libcurl multi), each connection reused
/// from message to message.
///
/// ```swift
/// let pool = try SMTPPool(configuration, connections: 4)
/// try pool.run(next: { … }, completed: { tag, result in … }, tick: { !cancelled() })
/// ```
public final class SMTPPool {
    private let connections: [SMTPConnection]
    private let multis: [MultiHandle]

    /// - Parameters:
    ///   - connections: parallel SMTP connections.
    ///   - threads: threads that drive them (default: one per two connections, at most one per core).
    public init(_ configuration: SMTPConfiguration, connections count: Int, threads: Int? = nil) throws(CurlError) {
        var connections: [SMTPConnection] = []
        for _ in 0..<max(1, count) { connections.append(try SMTPConnection(configuration)) }
        self.connections = connections
        multis = try multiHandles(transfers: connections.count, threads: threads)
        waker = Waker(multis)
    }

    /// Ends the waits of `run`'s threads for settlement.
    public let waker: Waker

    /// Sends what `next` hands out (a caller's tag and a message) until it returns nil or `tick`
    /// returns false; `completed` gets each message's outcome with its tag. `tick` runs about
    /// every `tickMilliseconds` while messages are in flight (cancel checks, heartbeats). These
    /// three closures may run on other threads than the caller's, but never two at once.
    /// With `settlement`, a connection starts its next message only once the outcome of its
    /// last one is settled (recorded); `waker` ends the wait for that.
    /// - Throws: `CurlError` only when a multi handle itself fails.
    public func run(
        tickMilliseconds: Int = 250,
        next: () -> (tag: Int, message: SMTPMessage)?,
        completed: (Int, Result<SMTPReply, CurlError>) -> Void,
        settlement: Settlement = .none,
        pacer: (any TransferPacer)? = nil,
        tick: () -> Bool = { true }
    ) throws(CurlError) {
        try runPool(
            workers: connections, multis: multis, tickMilliseconds: tickMilliseconds,
            next: { next().map { ($0.tag, $0.message) } }, completed: completed, settlement: settlement, pacer: pacer,
            tick: tick
        )
    }
}

@available(*, unavailable)
extension SMTPPool: Sendable {}

/// Runs HTTP requests several at once (libcurl multi) over kept-alive connections.
public final class HTTPPool {
    private let transfers: [HTTPTransfer]
    private let multis: [MultiHandle]

    private let pacer: StartPacer?

    /// - Parameters:
    ///   - parallel: requests in flight at once.
    ///   - startsPerSecond: at most this many requests start per second (nil: no limit).
    ///   - threads: threads that drive them (default: one per two transfers, at most one per core).
    public init(parallel count: Int, startsPerSecond: Double? = nil, threads: Int? = nil) throws(CurlError) {
        var transfers: [HTTPTransfer] = []
        for _ in 0..<max(1, count) { transfers.append(try HTTPTransfer()) }
        self.transfers = transfers
        pacer = startsPerSecond.flatMap { $0 > 0 ? StartPacer(perSecond: $0) : nil }
        multis = try multiHandles(transfers: transfers.count, threads: threads)
        waker = Waker(multis)
    }

    /// Ends the waits of `run`'s threads for settlement.
    public let waker: Waker

    /// Runs what `next` hands out until it returns nil or `tick` returns false; `completed` gets
    /// each response (any status) or the error that kept it from arriving. `next` is asked again
    /// after each completion even once it returned nil (a completion may queue a follow-up
    /// request). These three closures may run on other threads than the caller's, but never two
    /// at once; `settlement` as for `SMTPPool.run`.
    public func run(
        tickMilliseconds: Int = 250,
        next: () -> (tag: Int, request: HTTPRequest)?,
        completed: (Int, Result<HTTPResponse, CurlError>) -> Void,
        settlement: Settlement = .none,
        tick: () -> Bool = { true }
    ) throws(CurlError) {
        try runPool(
            workers: transfers, multis: multis, tickMilliseconds: tickMilliseconds,
            next: { next().map { ($0.tag, $0.request) } }, completed: completed, settlement: settlement, pacer: pacer,
            askAgain: true, tick: tick
        )
    }
}

@available(*, unavailable)
extension HTTPPool: Sendable {}
