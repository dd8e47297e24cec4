import CCurl

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

/// Runs jobs on `workers` in parallel through one multi handle, pulling the next job whenever a
/// worker is free, until `next` has no more or `tick` says stop; then waits for the transfers
/// already running.
func runPool<Worker: PooledTransfer>(
    workers: [Worker],
    multi: MultiHandle,
    tickMilliseconds: Int,
    next: () -> (tag: Int, job: Worker.Job)?,
    completed: (Int, Result<Worker.Output, CurlError>) -> Void,
    tick: () -> Bool
) throws(CurlError) {
    var idle = Array(workers.reversed())
    var running: [ObjectIdentifier: (worker: Worker, tag: Int)] = [:]
    var exhausted = false
    var stopped = false
    var lastTick = ContinuousClock.now
    let interval = Duration.milliseconds(tickMilliseconds)
    while true {
        while !exhausted, !stopped, let worker = idle.last {
            guard let (tag, job) = next() else { exhausted = true; break }
            do {
                try worker.prepare(job)
                try multi.add(worker.handle)
                idle.removeLast()
                running[ObjectIdentifier(worker.handle)] = (worker, tag)
            } catch {
                completed(tag, .failure(error))
            }
        }
        if running.isEmpty { break }
        for (handle, result) in try multi.poll(timeoutMilliseconds: min(tickMilliseconds, 100)) {
            guard let (worker, tag) = running.removeValue(forKey: ObjectIdentifier(handle)) else { continue }
            idle.append(worker)
            completed(tag, worker.finish(result))
        }
        if ContinuousClock.now - lastTick >= interval {
            lastTick = ContinuousClock.now
            if !stopped && !tick() { stopped = true }
        }
    }
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
    private let multi: MultiHandle

    public init(_ configuration: SMTPConfiguration, connections count: Int) throws(CurlError) {
        var connections: [SMTPConnection] = []
        for _ in 0..<max(1, count) { connections.append(try SMTPConnection(configuration)) }
        self.connections = connections
        multi = try MultiHandle()
    }

    /// Sends what `next` hands out (a caller's tag and a message) until it returns nil or `tick`
    /// returns false; `completed` gets each message's outcome with its tag. `tick` runs about
    /// every `tickMilliseconds` while messages are in flight (cancel checks, heartbeats).
    /// - Throws: `CurlError` only when the multi handle itself fails.
    public func run(
        tickMilliseconds: Int = 250,
        next: () -> (tag: Int, message: SMTPMessage)?,
        completed: (Int, Result<SMTPReply, CurlError>) -> Void,
        tick: () -> Bool = { true }
    ) throws(CurlError) {
        try runPool(
            workers: connections, multi: multi, tickMilliseconds: tickMilliseconds,
            next: { next().map { ($0.tag, $0.message) } }, completed: completed, tick: tick
        )
    }
}

@available(*, unavailable)
extension SMTPPool: Sendable {}

/// Runs HTTP requests several at once (libcurl multi) over kept-alive connections.
public final class HTTPPool {
    private let transfers: [HTTPTransfer]
    private let multi: MultiHandle

    public init(parallel count: Int) throws(CurlError) {
        var transfers: [HTTPTransfer] = []
        for _ in 0..<max(1, count) { transfers.append(try HTTPTransfer()) }
        self.transfers = transfers
        multi = try MultiHandle()
    }

    /// Runs what `next` hands out until it returns nil or `tick` returns false; `completed` gets
    /// each response (any status) or the error that kept it from arriving.
    public func run(
        tickMilliseconds: Int = 250,
        next: () -> (tag: Int, request: HTTPRequest)?,
        completed: (Int, Result<HTTPResponse, CurlError>) -> Void,
        tick: () -> Bool = { true }
    ) throws(CurlError) {
        try runPool(
            workers: transfers, multi: multi, tickMilliseconds: tickMilliseconds,
            next: { next().map { ($0.tag, $0.request) } }, completed: completed, tick: tick
        )
    }
}

@available(*, unavailable)
extension HTTPPool: Sendable {}
