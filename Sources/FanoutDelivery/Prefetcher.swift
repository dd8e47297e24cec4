import Foundation

/// Runs `transform` over what `source` hands out, in order, on a background thread, up to
/// `capacity` results ahead of the consumer, so rendering the next messages (and claiming the
/// next items) overlaps sending the current ones.
///
/// The consumer (the threads driving the transfers, one at a time) takes results in order with
/// `next()`; `stop()` ends the producer and waits for it, so `source` is never called after it
/// returns. Rendering is pure, so moving it off the transfer threads changes nothing but speed.
final class Prefetcher<Input: Sendable, Output: Sendable>: @unchecked Sendable {
    // Sendable: `results`, `head`, `finished` and `stopped` are only read or written while
    // `condition` is locked; `source` is only called by the producer thread.
    private let condition = NSCondition()
    /// Produced results; a taken one is set to nil at once, so its memory goes back right away.
    private var results: [(Input, Output)?] = []
    private var head = 0
    private var finished = false
    private var stopped = false
    /// Who sleeps on `condition`: waking a thread that is not waiting costs a futex call and,
    /// on two cores, a context switch per message.
    private var producerWaiting = false
    private var consumerWaiting = false
    private let capacity: Int

    init(source: @escaping @Sendable () -> Input?, capacity: Int, transform: @escaping @Sendable (Input) -> Output) {
        self.capacity = max(1, capacity)
        results.reserveCapacity(self.capacity * 2)
        let thread = Thread { [self] in
            while true {
                condition.lock()
                while results.count - head >= self.capacity && !stopped {
                    producerWaiting = true
                    condition.wait()
                    producerWaiting = false
                }
                let stop = stopped
                condition.unlock()
                if stop { break }
                guard let input = source() else { break }
                let output = transform(input)
                condition.lock()
                if head > 1024 {
                    // Drop what was consumed, so memory stays bounded on big batches.
                    results.removeFirst(head)
                    head = 0
                }
                results.append((input, output))
                if consumerWaiting { condition.signal() }
                condition.unlock()
            }
            condition.lock()
            finished = true
            condition.broadcast()
            condition.unlock()
        }
        thread.start()
    }

    /// The next result in input order; nil once every input was handed out (or after `stop`).
    func next() -> (Input, Output)? {
        condition.lock()
        defer { condition.unlock() }
        while head >= results.count && !finished && !stopped {
            consumerWaiting = true
            condition.wait()
            consumerWaiting = false
        }
        guard head < results.count, !stopped, let result = results[head] else { return nil }
        results[head] = nil
        head += 1
        // Wake the producer only once the buffer has room for a good run of work again.
        if producerWaiting && results.count - head <= capacity / 2 { condition.signal() }
        return result
    }

    /// Stops the producer and waits until it has; results not taken yet are dropped.
    func stop() {
        condition.lock()
        stopped = true
        condition.broadcast()
        while !finished { condition.wait() }
        condition.unlock()
    }
}
