import CCurl

/// A libcurl multi handle: runs many easy handles' transfers at once on the calling thread.
///
/// ```swift
/// let multi = try MultiHandle()
/// try multi.add(handle)
/// while multi.activeCount > 0 {
///     for (handle, result) in try multi.poll(timeoutMilliseconds: 200) { … }
/// }
/// ```
/// See https://curl.se/libcurl/c/libcurl-multi.html
public final class MultiHandle {
    private let raw: UnsafeMutableRawPointer
    private var active: [UnsafeMutableRawPointer: EasyHandle] = [:]

    /// Creates a multi handle.
    /// - Parameter maxConnectionsPerHost: a cap on parallel connections to one host (0: none).
    public init(maxConnectionsPerHost: Int = 0) throws(CurlError) {
        guard curlInitialised, let raw = curl_multi_init() else {
            throw CurlError(
                code: .other, curlCode: -1, message: "could not initialise libcurl", function: "curl_multi_init")
        }
        self.raw = raw
        if maxConnectionsPerHost > 0 {
            try check(
                ccurl_multi_setopt_long(raw, CURLMOPT_MAX_HOST_CONNECTIONS, maxConnectionsPerHost),
                "CURLMOPT_MAX_HOST_CONNECTIONS")
        }
    }

    deinit {
        for handle in active.keys { curl_multi_remove_handle(raw, handle) }
        curl_multi_cleanup(raw)
    }

    /// Transfers added and not yet finished.
    public var activeCount: Int { active.count }

    /// Starts a transfer prepared on `handle` (see `SMTPConnection.prepare`, `HTTPTransfer`).
    func add(_ handle: EasyHandle) throws(CurlError) {
        try check(curl_multi_add_handle(raw, handle.raw), "curl_multi_add_handle")
        active[handle.raw] = handle
    }

    /// Drives every transfer, waits up to `timeoutMilliseconds` for activity, and returns the
    /// handles whose transfers ended, with libcurl's result for each.
    /// With `waitWhenIdle`, waits even with no transfer running (until `wakeUp` or the timeout).
    /// `beforePerform` runs between the wait and the transfers' progress (a caller may stop some
    /// transfers there, after a wait that could have been a SIGSTOP).
    func poll(
        timeoutMilliseconds: Int, waitWhenIdle: Bool = false, beforePerform: () -> Void = {}
    ) throws(CurlError) -> [(EasyHandle, CURLcode)] {
        // One perform per wake-up: each perform asks every SMTP handle's socket for a reply (a
        // system call each), so a perform with nothing to read is not free. A transfer just
        // added is due at once, and libcurl's timer makes the poll return at once for it.
        var running: Int32 = 0
        if !active.isEmpty || waitWhenIdle {
            try check(curl_multi_poll(raw, nil, 0, Int32(timeoutMilliseconds), nil), "curl_multi_poll")
        }
        beforePerform()
        try check(curl_multi_perform(raw, &running), "curl_multi_perform")
        return collect()
    }

    /// The handle for `curl_multi_wakeup`, which may be called from any thread.
    var wakeable: UnsafeMutableRawPointer { raw }

    private func collect() -> [(EasyHandle, CURLcode)] {
        var finished: [(EasyHandle, CURLcode)] = []
        var left: Int32 = 0
        while let message = curl_multi_info_read(raw, &left) {
            guard message.pointee.msg == CURLMSG_DONE, let easy = message.pointee.easy_handle else { continue }
            let result = message.pointee.data.result
            curl_multi_remove_handle(raw, easy)
            if let handle = active.removeValue(forKey: easy) {
                finished.append((handle, result))
            }
        }
        return finished
    }
}

@available(*, unavailable)
extension MultiHandle: Sendable {}
