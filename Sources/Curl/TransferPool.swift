import CCurl
#if canImport(Glibc)
import Glibc
#endif

/// A reusable transfer object that a pool can run on a multi handle.
protocol PooledTransfer: AnyObject {
    associatedtype Job
    associatedtype Output
    var handle: EasyHandle { get }
    func prepare(_ job: Job) throws(CurlError)
    func finish(_ result: CURLcode) -> Result<Output, CurlError>
}

extension SMTPConnection: PooledTransfer {}
extension HTTPTransfer: PooledTransfer {}

/// Runs jobs on `workers` in parallel, pulling the next job whenever a worker is free, until
/// `next` has no more or `tick` says stop; then waits for the transfers already running.
///
/// The workers are split over `multis.count` threads (the calling thread is one), each driving
/// its own multi handle: libcurl's per-transfer work is mostly system calls, and one thread is
/// the bound long before the server is. `next`, `completed` and `tick` are called under one lock,
/// never two at once, so they may share state without synchronising it themselves. `settle` is
/// called without the lock, by a thread after it reported completions and before it starts new
/// transfers (to wait until those outcomes are recorded); it may run on two threads at once.
func runPool<Worker: PooledTransfer>(
    workers: [Worker],
    multis: [MultiHandle],
    tickMilliseconds: Int,
    next: () -> (tag: Int, job: Worker.Job)?,
    completed: (Int, Result<Worker.Output, CurlError>) -> Void,
    settle: () -> Void,
    tick: () -> Bool
) throws(CurlError) {
    try withoutActuallyEscaping(next) { next throws(CurlError) in
        try withoutActuallyEscaping(completed) { completed throws(CurlError) in
          try withoutActuallyEscaping(settle) { settle throws(CurlError) in
            try withoutActuallyEscaping(tick) { tick throws(CurlError) in
                let shared = PoolShared(tickMilliseconds: tickMilliseconds, next: next, completed: completed, settle: settle, tick: tick)
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
}

/// What the threads of one `runPool` share; the mutable fields are only touched in `locked`.
private final class PoolShared<Job, Output>: @unchecked Sendable {
    // Allocated, not a stored pthread_mutex_t: a mutex must not move, and `&property` promises no
    // stable address.
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    let next: () -> (tag: Int, job: Job)?
    let completed: (Int, Result<Output, CurlError>) -> Void
    let settle: () -> Void
    let tick: () -> Bool
    let interval: Duration
    /// How long a thread waits for network activity before it looks at the clock again.
    let pollMilliseconds: Int
    var lastTick = ContinuousClock.now
    var exhausted = false
    var stopped = false
    var failure: CurlError?

    init(tickMilliseconds: Int, next: @escaping () -> (tag: Int, job: Job)?, completed: @escaping (Int, Result<Output, CurlError>) -> Void, settle: @escaping () -> Void, tick: @escaping () -> Bool) {
        interval = .milliseconds(tickMilliseconds)
        pollMilliseconds = min(tickMilliseconds, 100)
        self.next = next
        self.completed = completed
        self.settle = settle
        self.tick = tick
        mutex.initialize(to: pthread_mutex_t())
        pthread_mutex_init(mutex, nil)
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    func locked<T>(_ body: () -> T) -> T {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return body()
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
        while true {
            shared.locked {
                while !shared.exhausted, !shared.stopped, starting.count < idle.count {
                    guard let (tag, job) = shared.next() else { shared.exhausted = true; break }
                    starting.append((idle[idle.count - 1 - starting.count], tag, job))
                }
            }
            var refused: [(Int, CurlError)] = []
            for (worker, tag, job) in starting {
                do {
                    try worker.prepare(job)
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
                if done { break } else { continue }
            }
            let finished: [(EasyHandle, CURLcode)]
            do {
                finished = try multi.poll(timeoutMilliseconds: shared.pollMilliseconds)
            } catch {
                // The multi handle itself failed: its transfers are lost; the others finish.
                shared.locked {
                    if shared.failure == nil { shared.failure = error }
                    shared.stopped = true
                }
                break
            }
            var results: [(Int, Result<Worker.Output, CurlError>)] = []
            for (handle, result) in finished {
                guard let (worker, tag) = running.removeValue(forKey: ObjectIdentifier(handle)) else { continue }
                idle.append(worker)
                results.append((tag, worker.finish(result)))
            }
            shared.locked {
                for (tag, result) in results { shared.completed(tag, result) }
                shared.tickIfDue()
            }
            if !results.isEmpty { shared.settle() }
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
    let started = pthread_create(&thread, nil, { context in
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
    }

    /// Sends what `next` hands out (a caller's tag and a message) until it returns nil or `tick`
    /// returns false; `completed` gets each message's outcome with its tag. `tick` runs about
    /// every `tickMilliseconds` while messages are in flight (cancel checks, heartbeats). These
    /// three closures may run on other threads than the caller's, but never two at once.
    /// `settle` runs on a driving thread after it reported outcomes and before it starts new
    /// transfers, outside that exclusion (wait there until the outcomes are recorded).
    /// - Throws: `CurlError` only when a multi handle itself fails.
    public func run(
        tickMilliseconds: Int = 250,
        next: () -> (tag: Int, message: SMTPMessage)?,
        completed: (Int, Result<SMTPReply, CurlError>) -> Void,
        settle: () -> Void = {},
        tick: () -> Bool = { true }
    ) throws(CurlError) {
        try runPool(
            workers: connections, multis: multis, tickMilliseconds: tickMilliseconds,
            next: { next().map { ($0.tag, $0.message) } }, completed: completed, settle: settle, tick: tick
        )
    }
}

@available(*, unavailable)
extension SMTPPool: Sendable {}

/// Runs HTTP requests several at once (libcurl multi) over kept-alive connections.
public final class HTTPPool {
    private let transfers: [HTTPTransfer]
    private let multis: [MultiHandle]

    /// - Parameters:
    ///   - parallel: requests in flight at once.
    ///   - threads: threads that drive them (default: one per two transfers, at most one per core).
    public init(parallel count: Int, threads: Int? = nil) throws(CurlError) {
        var transfers: [HTTPTransfer] = []
        for _ in 0..<max(1, count) { transfers.append(try HTTPTransfer()) }
        self.transfers = transfers
        multis = try multiHandles(transfers: transfers.count, threads: threads)
    }

    /// Runs what `next` hands out until it returns nil or `tick` returns false; `completed` gets
    /// each response (any status) or the error that kept it from arriving. These three closures
    /// may run on other threads than the caller's, but never two at once; `settle` as for
    /// `SMTPPool.run`.
    public func run(
        tickMilliseconds: Int = 250,
        next: () -> (tag: Int, request: HTTPRequest)?,
        completed: (Int, Result<HTTPResponse, CurlError>) -> Void,
        settle: () -> Void = {},
        tick: () -> Bool = { true }
    ) throws(CurlError) {
        try runPool(
            workers: transfers, multis: multis, tickMilliseconds: tickMilliseconds,
            next: { next().map { ($0.tag, $0.request) } }, completed: completed, settle: settle, tick: tick
        )
    }
}

@available(*, unavailable)
extension HTTPPool: Sendable {}
