import Foundation

/// One helper thread that runs the closures given to it in order, for a tick that prepares the
/// next company's batch and ends the last one while the current one is delivered.
///
/// `@unchecked Sendable`: the queue and results are guarded by `condition`; the closures carry
/// what they touch, and the tick hands each database connection to one thread at a time.
final class SerialHelper: @unchecked Sendable {
    private let condition = NSCondition()
    private var queue: [() -> Void] = []
    private var busy = false
    private var closed = false
    private var thread: Thread?

    init() {
        let thread = Thread { [self] in loop() }
        thread.name = "fanout-tick-helper"
        self.thread = thread
        thread.start()
    }

    /// Runs `body` after everything submitted before it.
    func submit(_ body: @escaping () -> Void) {
        condition.lock()
        queue.append(body)
        condition.broadcast()
        condition.unlock()
    }

    /// Runs `body` on the helper and hands its result to the caller of `Pending.wait`.
    func run<T>(_ body: @escaping () throws -> T) -> Pending<T> {
        let pending = Pending<T>()
        submit { pending.fulfil(Result { try body() }) }
        return pending
    }

    /// Waits until everything submitted has run, and stops the thread.
    func finish() {
        condition.lock()
        closed = true
        condition.broadcast()
        while !queue.isEmpty || busy || thread != nil { condition.wait() }
        condition.unlock()
    }

    private func loop() {
        condition.lock()
        while true {
            if let body = queue.first {
                queue.removeFirst()
                busy = true
                condition.unlock()
                body()
                condition.lock()
                busy = false
                condition.broadcast()
            } else if closed {
                break
            } else {
                condition.wait()
            }
        }
        thread = nil
        condition.broadcast()
        condition.unlock()
    }
}

/// The result of a closure a `SerialHelper` runs, once it has run.
final class Pending<T>: @unchecked Sendable {
    private let condition = NSCondition()
    private var result: Result<T, any Error>?

    fileprivate func fulfil(_ result: Result<T, any Error>) {
        condition.lock()
        self.result = result
        condition.broadcast()
        condition.unlock()
    }

    func wait() throws -> T {
        condition.lock()
        defer { condition.unlock() }
        while result == nil { condition.wait() }
        return try result!.get()
    }
}
