import CCurl
#if canImport(Glibc)
import Glibc
#endif

let curlInitialised: Bool = {
    // curl_global_init must run once before any other thread uses libcurl.
    curl_global_init(Int(CURL_GLOBAL_DEFAULT)) == CURLE_OK
}()

/// One libcurl easy handle with the buffers its callbacks use.
///
/// A handle keeps its connection between transfers, so reusing it for the next message to the
/// same server costs no new connect. See https://curl.se/libcurl/c/libcurl-easy.html
public final class EasyHandle {
    let raw: UnsafeMutableRawPointer
    let state = TransferState()
    private let errorBuffer = UnsafeMutablePointer<CChar>.allocate(capacity: Int(CURL_ERROR_SIZE) + 1)
    private var lists: [UnsafeMutablePointer<curl_slist>] = []

    /// Creates a handle.
    /// - Throws: `CurlError` when libcurl cannot be initialised.
    public init() throws(CurlError) {
        guard curlInitialised, let raw = curl_easy_init() else {
            throw CurlError(
                code: .other, curlCode: -1, message: "could not initialise libcurl", function: "curl_easy_init")
        }
        self.raw = raw
        errorBuffer.initialize(repeating: 0, count: Int(CURL_ERROR_SIZE) + 1)
        let userdata = Unmanaged.passUnretained(state).toOpaque()
        try setDefaults(userdata)
    }

    deinit {
        curl_easy_cleanup(raw)
        freeLists()
        errorBuffer.deallocate()
    }

    private func setDefaults(_ userdata: UnsafeMutableRawPointer) throws(CurlError) {
        try set(CURLOPT_NOSIGNAL, 1)
        try set(CURLOPT_ERRORBUFFER, pointer: UnsafeMutableRawPointer(errorBuffer))
        try check(ccurl_easy_setopt_data_callback(raw, CURLOPT_WRITEFUNCTION, writeCallback), "CURLOPT_WRITEFUNCTION")
        try set(CURLOPT_WRITEDATA, pointer: userdata)
        try check(
            ccurl_easy_setopt_data_callback(raw, CURLOPT_HEADERFUNCTION, headerCallback), "CURLOPT_HEADERFUNCTION")
        try set(CURLOPT_HEADERDATA, pointer: userdata)
        try check(ccurl_easy_setopt_data_callback(raw, CURLOPT_READFUNCTION, readCallback), "CURLOPT_READFUNCTION")
        try set(CURLOPT_READDATA, pointer: userdata)
        try check(ccurl_easy_setopt_debug_callback(raw, debugCallback), "CURLOPT_DEBUGFUNCTION")
        try set(CURLOPT_DEBUGDATA, pointer: userdata)
        try set(CURLOPT_SSL_VERIFYPEER, 1)
        try set(CURLOPT_SSL_VERIFYHOST, 2)
        try set(CURLOPT_TCP_NODELAY, 1)
    }

    func set(_ option: CURLoption, _ value: Int) throws(CurlError) {
        try check(ccurl_easy_setopt_long(raw, option, value), "curl_easy_setopt(\(option.rawValue))")
    }

    func set(_ option: CURLoption, _ value: String?) throws(CurlError) {
        let result =
            if let value { ccurl_easy_setopt_string(raw, option, value) } else {
                ccurl_easy_setopt_string(raw, option, nil)
            }
        try check(result, "curl_easy_setopt(\(option.rawValue))")
    }

    func set(_ option: CURLoption, offset value: Int64) throws(CurlError) {
        try check(ccurl_easy_setopt_off(raw, option, curl_off_t(value)), "curl_easy_setopt(\(option.rawValue))")
    }

    func set(_ option: CURLoption, pointer value: UnsafeMutableRawPointer?) throws(CurlError) {
        try check(ccurl_easy_setopt_pointer(raw, option, value), "curl_easy_setopt(\(option.rawValue))")
    }

    /// Sets a list option; the list lives until the next call to `freeLists` or the handle's end.
    func set(_ option: CURLoption, list items: [String]) throws(CurlError) {
        var list: UnsafeMutablePointer<curl_slist>?
        for item in items {
            guard let appended = curl_slist_append(list, item) else {
                if let list { curl_slist_free_all(list) }
                throw CurlError(code: .other, curlCode: -1, message: "out of memory", function: "curl_slist_append")
            }
            list = appended
        }
        if let list { lists.append(list) }
        try check(ccurl_easy_setopt_slist(raw, option, list), "curl_easy_setopt(\(option.rawValue))")
    }

    /// Frees the lists of earlier transfers; call only once options no longer point at them.
    func freeLists() {
        for list in lists { curl_slist_free_all(list) }
        lists.removeAll()
    }

    func info(_ info: CURLINFO) -> Int {
        var value = 0
        _ = ccurl_easy_getinfo_long(raw, info, &value)
        return value
    }

    /// The last reply code from the server (SMTP or HTTP), 0 if none.
    public var responseCode: Int { info(CURLINFO_RESPONSE_CODE) }

    /// Clears the per-transfer buffers and the error buffer before a transfer.
    func prepareTransfer() {
        errorBuffer[0] = 0
        state.reset()
    }

    /// libcurl's error buffer for the last transfer.
    var errorDetail: String { String(cString: errorBuffer) }

    /// Lets a transfer held at the end of its upload (`TransferState.holdEnd`) send its last
    /// byte: the server gets the end of the message now.
    func releaseHeldEnd() {
        guard state.endHold.isHolding else { return }
        state.endHold = .off
        _ = curl_easy_pause(raw, 0) // CURLPAUSE_CONT
    }

    /// Makes a transfer held at the end of its upload fail instead (`CURLE_ABORTED_BY_CALLBACK`)
    /// without its last byte: the server never gets the end of the message. (Removing the handle
    /// instead would not do: libcurl's SMTP ends a transfer removed without error with the end of
    /// DATA, and the server takes the message.)
    func abortHeldEnd() {
        guard state.endHold != .aborted else { return }
        state.endHold = .aborting
        _ = curl_easy_pause(raw, 0) // CURLPAUSE_CONT
    }

    /// Shuts the transfer's connection down (both ways) without a word more: whatever libcurl
    /// would still send when the handle is cleaned up (SMTP's end of DATA) never arrives.
    func shutDownConnection() {
        var socket: curl_socket_t = -1
        if ccurl_easy_getinfo_socket(raw, CURLINFO_ACTIVESOCKET, &socket) == CURLE_OK, socket >= 0 {
            _ = shutdown(socket, Int32(SHUT_RDWR))
        }
    }

    /// Runs the transfer on this thread until it ends.
    func perform() -> CURLcode {
        curl_easy_perform(raw)
    }
}

@available(*, unavailable)
extension EasyHandle: Sendable {}

/// The buffers the C callbacks read from and write into, for one transfer at a time.
final class TransferState {
    var upload: [UInt8] = []
    var uploadOffset = 0
    var body: [UInt8] = []
    var bodyLimit = 1 << 20
    var bodyTruncated = false
    var headerLines: [String] = []
    /// What the server sent (for SMTP: every `250-…`, `550 …` line), as it came.
    var replyBytes: [UInt8] = []
    /// The commands the client sent, verb only (`EHLO`, `MAIL`, `RCPT`, `DATA`, `AUTH`, …).
    var commandsSent: [String] = []
    /// Set by SMTP connections, which turn on verbose mode for the debug callback.
    var recordsProtocolLines = false
    /// Whether the upload's last byte is kept back: the server cannot take the message before it
    /// has its end (for SMTP, the end of DATA).
    enum EndHold {
        /// Sent as it comes.
        case off
        /// The last byte waits for `EasyHandle.releaseHeldEnd`; the read has not reached it yet.
        case holding
        /// The read paused at the last byte, waiting for `releaseHeldEnd`.
        case paused
        /// The next read fails the transfer (`abortHeldEnd`).
        case aborting
        /// The read did fail it: the server never got the end of the message.
        case aborted

        var isHolding: Bool { self == .holding || self == .paused }
    }
    var endHold = EndHold.off

    func reset() {
        uploadOffset = 0
        endHold = .off
        body.removeAll(keepingCapacity: true)
        bodyTruncated = false
        headerLines.removeAll(keepingCapacity: true)
        replyBytes.removeAll(keepingCapacity: true)
        commandsSent.removeAll(keepingCapacity: true)
    }
}

@available(*, unavailable)
extension TransferState: Sendable {}

private func state(_ userdata: UnsafeMutableRawPointer?) -> TransferState {
    Unmanaged<TransferState>.fromOpaque(userdata!).takeUnretainedValue()
}

private let writeCallback: ccurl_data_callback = { buffer, size, count, userdata in
    let state = state(userdata)
    let length = size * count
    let room = max(0, state.bodyLimit - state.body.count)
    let kept = min(room, length)
    if kept > 0, let buffer {
        buffer.withMemoryRebound(to: UInt8.self, capacity: kept) { bytes in
            state.body.append(contentsOf: UnsafeBufferPointer(start: bytes, count: kept))
        }
    }
    if kept < length { state.bodyTruncated = true }
    // Report everything as consumed: a capped body is not an error.
    return length
}

private let headerCallback: ccurl_data_callback = { buffer, size, count, userdata in
    let state = state(userdata)
    let length = size * count
    // SMTP replies are read by the debug callback, with their order against the commands.
    guard let buffer, !state.recordsProtocolLines else { return length }
    buffer.withMemoryRebound(to: UInt8.self, capacity: length) { bytes in
        var end = length
        while end > 0, bytes[end - 1] == 13 || bytes[end - 1] == 10 { end -= 1 }
        let line = UnsafeBufferPointer(start: bytes, count: end)
        // A new status line starts a new header block (after 100 Continue or a redirect).
        if line.starts(with: "HTTP/".utf8) { state.headerLines.removeAll() }
        if end > 0 { state.headerLines.append(String(decoding: line, as: UTF8.self)) }
    }
    return length
}

/// CURL_READFUNC_PAUSE and CURL_READFUNC_ABORT (macros Swift does not import).
private let readFunctionPause = 0x1000_0001
private let readFunctionAbort = 0x1000_0000

private let readCallback: ccurl_data_callback = { buffer, size, count, userdata in
    let state = state(userdata)
    let room = size * count
    if state.endHold == .aborting || state.endHold == .aborted {
        state.endHold = .aborted
        return readFunctionAbort
    }
    let left = state.upload.count - state.uploadOffset
    let holding = state.endHold.isHolding
    if holding && left <= 1 && !state.upload.isEmpty {
        // The last byte waits: libcurl calls again once the transfer is unpaused.
        state.endHold = .paused
        return readFunctionPause
    }
    // With the end held, this read stops one byte short of it.
    let n = min(room, holding ? left - 1 : left)
    if n > 0, let buffer {
        state.upload.withUnsafeBytes { source in
            UnsafeMutableRawPointer(buffer).copyMemory(from: source.baseAddress! + state.uploadOffset, byteCount: n)
        }
        state.uploadOffset += n
    }
    return n
}

private let smtpVerbs: [(verb: String, bytes: [UInt8])] = [
    "EHLO", "HELO", "STARTTLS", "AUTH", "MAIL", "RCPT", "DATA", "BDAT", "QUIT", "RSET", "NOOP", "VRFY", "EXPN", "HELP",
].map { ($0, Array($0.utf8)) }

private let debugCallback: ccurl_debug_callback = { _, type, data, size, userdata in
    guard type == CURLINFO_HEADER_IN || type == CURLINFO_HEADER_OUT else { return 0 }
    let state = state(userdata)
    guard state.recordsProtocolLines, let data else { return 0 }
    let bytes = UnsafeRawBufferPointer(start: data, count: size)
    if type == CURLINFO_HEADER_IN {
        // Kept as bytes; split into lines only when the transfer's reply is read.
        state.replyBytes.append(contentsOf: bytes)
    } else {
        // Only a known verb: the arguments carry addresses and credentials, and AUTH's
        // continuation lines are credentials themselves (base64), so they are never kept.
        var end = 0
        while end < min(bytes.count, 16), bytes[end] != 32, bytes[end] != 13, bytes[end] != 10 { end += 1 }
        let word = bytes[0..<end]
        let known = smtpVerbs.first { known in
            known.bytes.count == word.count
                && zip(known.bytes, word).allSatisfy { $0 == ($1 >= 97 && $1 <= 122 ? $1 - 32 : $1) }
        }
        if let known { state.commandsSent.append(known.verb) }
    }
    return 0
}
