import Curl
import Foundation
import Testing
import TestSupport

@Suite(.enabled(if: TestEnvironment.canStartServers))
struct SMTPTests {
    static func message(to recipient: String, body: String = "Hello.\r\n") -> SMTPMessage {
        let content = """
            From: Sender <sender@example.test>\r
            To: <\(recipient)>\r
            Subject: test\r
            Message-ID: <\(UUID().uuidString)@example.test>\r
            \r
            \(body)
            """
        return SMTPMessage(from: "sender@example.test", recipients: [recipient], content: Array(content.utf8))
    }

    static func configuration(_ server: TestServer, timeout: Int = 10_000) -> SMTPConfiguration {
        SMTPConfiguration(
            host: "127.0.0.1", port: server.port, connectTimeoutMilliseconds: 5_000, timeoutMilliseconds: timeout)
    }

    @Test func messageArrivesByteForByte() throws {
        let server = try TestServer.smtp()
        // A line that starts with a dot, 8-bit text, a long line and a blank line: what SMTP's
        // dot-stuffing and line handling could damage.
        let body = ".leading dot\r\n..two dots\r\nGrüße 🎉\r\n\r\n\(String(repeating: "x", count: 900))\r\n.\r\nend\r\n"
        let message = Self.message(to: "someone@example.test", body: body)
        let reply = try SMTPConnection(Self.configuration(server)).send(message)
        #expect(reply.code == 250)
        #expect(reply.text.hasPrefix("250 "))
        #expect(reply.text.contains("queued"))
        let file = try #require(server.messageFiles.first)
        #expect(try Data(contentsOf: file) == Data(message.content))
    }

    @Test func permanentRejectionCarriesCodeAndText() throws {
        let server = try TestServer.smtp()
        let error = #expect(throws: CurlError.self) {
            try SMTPConnection(Self.configuration(server)).send(Self.message(to: "reject550-x@example.test"))
        }
        #expect(error?.code == .rejected)
        #expect(error?.responseCode == 550)
        #expect(error?.responseText.hasPrefix("550 5.1.1") == true)
        #expect(error?.responseText.contains("Recipient address rejected") == true)
        #expect(error?.function == "SMTP RCPT TO")
        #expect(server.messageFiles.isEmpty)
    }

    @Test func temporaryRejectionCarriesCodeAndText() throws {
        let server = try TestServer.smtp()
        let error = #expect(throws: CurlError.self) {
            try SMTPConnection(Self.configuration(server)).send(Self.message(to: "defer451@example.test"))
        }
        #expect(error?.code == .rejected)
        #expect(error?.responseCode == 451)
        #expect(error?.responseText.hasPrefix("451 4.3.0") == true)
    }

    @Test func rejectionAtEndOfDataCarriesCodeAndText() throws {
        let server = try TestServer.smtp()
        let error = #expect(throws: CurlError.self) {
            try SMTPConnection(Self.configuration(server)).send(Self.message(to: "reject-data554@example.test"))
        }
        #expect(error?.code == .rejected)
        #expect(error?.responseCode == 554)
        #expect(error?.responseText.contains("spam") == true)
    }

    @Test func connectionIsReusedForConsecutiveMessages() throws {
        let server = try TestServer.smtp()
        let connection = try SMTPConnection(Self.configuration(server))
        for i in 0..<5 {
            try connection.send(Self.message(to: "r\(i)@example.test"))
        }
        #expect(server.messageFiles.count == 5)
        #expect(server.connectionCount == 1)
        // libcurl ends a session after a refused recipient (QUIT); the handle reconnects by itself.
        #expect(throws: CurlError.self) { try connection.send(Self.message(to: "reject550@example.test")) }
        try connection.send(Self.message(to: "after@example.test"))
        #expect(server.messageFiles.count == 6)
        #expect(server.connectionCount == 2)
    }

    @Test func verifyBetweenMessagesLeavesTheConnectionSendingMessages() throws {
        let server = try TestServer.smtp()
        let connection = try SMTPConnection(Self.configuration(server))
        try connection.send(Self.message(to: "before@example.test"))
        #expect(try connection.verify().code == 250)
        try connection.send(Self.message(to: "after@example.test"))
        #expect(server.messageFiles.count == 2)
    }

    @Test func poolSendsInParallelOverFewConnections() throws {
        let server = try TestServer.smtp()
        let pool = try SMTPPool(Self.configuration(server), connections: 4)
        var queue = (0..<40).map { (tag: $0, message: Self.message(to: "p\($0)@example.test")) }
        queue.reverse()
        var results: [Int: Result<SMTPReply, CurlError>] = [:]
        try pool.run(next: { queue.popLast() }, completed: { results[$0] = $1 })
        #expect(results.count == 40)
        #expect(results.values.allSatisfy { (try? $0.get().code) == 250 })
        #expect(server.messageFiles.count == 40)
        #expect(server.connectionCount <= 4)
        #expect(server.connectionCount >= 1)
    }

    /// Messages whose last byte waits for their connection's last outcome to be recorded (the
    /// pool's hold) arrive whole, dot-stuffed lines included, and each only once.
    @Test func heldMessagesWithDotLinesArriveByteForByte() throws {
        let server = try TestServer.smtp()
        let pool = try SMTPPool(Self.configuration(server), connections: 2)
        let book = TicketBook()
        let recorder = Thread { [waker = pool.waker] in
            // Outcomes are "recorded" a little after they are reported: the next messages wait.
            while !book.done {
                Thread.sleep(forTimeInterval: 0.01)
                book.recordAll()
                waker.wake()
            }
        }
        recorder.start()
        defer { book.finish() }
        var queue = (0..<12).map { index -> (tag: Int, message: SMTPMessage) in
            if index == 0 {
                // A message that starts with a dot: stuffed before anything else.
                return (index, SMTPMessage(from: "s@example.test", recipients: ["d0@example.test"],
                    content: Array(".first line\r\n\r\nbody\r\n".utf8)))
            }
            let body = ".a\r\n..b\r\nline \(index)\r\n.\r\n" + (index % 2 == 0 ? ".end\r\n" : "end\r\n")
            return (index, Self.message(to: "d\(index)@example.test", body: body))
        }
        let sent = Dictionary(uniqueKeysWithValues: queue.map { ($0.tag, $0.message.content) })
        queue.reverse()
        var codes: [Int: Int] = [:]
        try pool.run(
            next: { queue.popLast() },
            completed: { tag, result in codes[tag] = (try? result.get())?.code ?? -1 },
            settlement: Settlement(ticket: { book.issue() }, settled: { book.isRecorded($0) })
        )
        #expect(codes.count == 12 && codes.values.allSatisfy { $0 == 250 }, "\(codes)")
        #expect(book.heldAnswers > 0, "some messages waited for their connection's last outcome")
        let received = Set(try server.messageFiles.map { try Data(contentsOf: $0) })
        #expect(server.messageFiles.count == 12)
        #expect(received == Set(sent.values.map { Data($0) }))
    }

    /// A held message whose connection's last outcome settles after the batch stopped
    /// (`proceed` false), or every transfer once the caller lost the right to deliver
    /// (`abandon`), fails short of its end: the server never takes it, and it is not reported
    /// (its item goes back uncharged). Every message the server took was reported, and only those.
    @Test(arguments: ["proceed", "abandon"])
    func abandonedMessagesNeverReachTheServer(way: String) throws {
        let server = try TestServer.smtp()
        let pool = try SMTPPool(Self.configuration(server), connections: 2)
        let book = TicketBook()
        let recorder = Thread { [waker = pool.waker] in
            // Slow recording (100 ms): each connection's next message is held meanwhile.
            while !book.done {
                Thread.sleep(forTimeInterval: 0.1)
                book.recordAll()
                waker.wake()
            }
        }
        recorder.start()
        defer { book.finish() }
        let reported = Counter()
        var queue = (0..<8).map { (tag: $0, message: Self.message(to: "a\($0)@example.test")) }
        queue.reverse()
        var completed: [Int] = []
        try pool.run(
            // Abandoning: four messages, the last two held when the right to deliver goes.
            next: { way == "abandon" && queue.count <= 4 ? nil : queue.popLast() },
            completed: { tag, _ in
                completed.append(tag)
                reported.add()
            },
            settlement: Settlement(
                ticket: { book.issue() }, settled: { book.isRecorded($0) },
                proceed: { way != "proceed" }, abandon: { way == "abandon" && reported.value >= 2 })
        )
        let handedOut = 8 - queue.count
        #expect(completed.count < handedOut, "some messages were abandoned (\(completed.count) of \(handedOut))")
        #expect(server.messageFiles.count == completed.count)
        #expect(Set(server.deliveredRecipients) == Set(completed.map { "a\($0)@example.test" }))
    }

    @Test func poolStopsStartingWorkWhenTickSaysStop() throws {
        let server = try TestServer.smtp()
        let pool = try SMTPPool(Self.configuration(server), connections: 1)
        var handedOut = 0
        try pool.run(
            tickMilliseconds: 0,
            next: {
                handedOut += 1
                return (handedOut, Self.message(to: "s\(handedOut)@example.test"))
            },
            completed: { _, _ in },
            tick: { false }
        )
        #expect(handedOut == 1)
    }

    @Test func silentServerHitsTheTimeout() throws {
        let server = try TestServer.smtp(["--silent"])
        let error = #expect(throws: CurlError.self) {
            try SMTPConnection(Self.configuration(server, timeout: 1_500)).send(Self.message(to: "x@example.test"))
        }
        #expect(error?.code == .timeout)
        #expect(error?.function == "SMTP connect")
    }

    @Test func refusedConnectionIsAConnectError() throws {
        let configuration = SMTPConfiguration(host: "127.0.0.1", port: 1, connectTimeoutMilliseconds: 2_000)
        let error = #expect(throws: CurlError.self) {
            try SMTPConnection(configuration).send(Self.message(to: "x@example.test"))
        }
        #expect(error?.code == .connect)
    }

    @Test func serverClosingBeforeMailFromIsABrokenConnection() throws {
        let server = try TestServer.smtp(["--close-before-mail"])
        let error = #expect(throws: CurlError.self) {
            try SMTPConnection(Self.configuration(server)).send(Self.message(to: "x@example.test"))
        }
        #expect(error?.code == .connectionBroken)
        #expect(error?.function == "SMTP MAIL FROM")
    }
}

@Suite(.enabled(if: TestEnvironment.hasServers))
struct SMTPAuthTests {
    static func configuration(password: String, caFile: String?) -> SMTPConfiguration {
        SMTPConfiguration(
            host: "localhost", port: TestEnvironment.smtpAuthPort, security: .startTLS,
            username: "fanout", password: password, tls: TLSOptions(caFile: caFile),
            connectTimeoutMilliseconds: 5_000, timeoutMilliseconds: 10_000
        )
    }

    @Test func startTLSAndAuthSucceedWithTheRightCredentials() throws {
        let reply = try SMTPConnection(
            Self.configuration(password: "smtp-secret", caFile: TestEnvironment.tlsCertificate)
        )
        .send(SMTPTests.message(to: "auth-ok@example.test"))
        #expect(reply.code == 250)
    }

    @Test func wrongPasswordIsALoginError() throws {
        let error = #expect(throws: CurlError.self) {
            try SMTPConnection(
                Self.configuration(password: "wrong-password-123", caFile: TestEnvironment.tlsCertificate)
            )
            .send(SMTPTests.message(to: "auth-bad@example.test"))
        }
        #expect(error?.code == .login)
        #expect(error?.responseCode == 535)
        #expect(error?.function == "SMTP AUTH")
        #expect(error?.description.contains("wrong-password-123") == false)
        // Nor in base64, as AUTH PLAIN and LOGIN send it.
        for encoded in [
            Data("\0fanout\0wrong-password-123".utf8), Data("wrong-password-123".utf8), Data("fanout".utf8),
        ].map({ $0.base64EncodedString() }) {
            #expect(error?.description.contains(encoded) == false)
            #expect(error?.description.uppercased().contains(String(encoded.prefix(12)).uppercased()) == false)
        }
    }

    @Test func selfSignedCertificateIsRejectedByDefault() throws {
        let error = #expect(throws: CurlError.self) {
            try SMTPConnection(Self.configuration(password: "smtp-secret", caFile: nil))
                .send(SMTPTests.message(to: "tls@example.test"))
        }
        #expect(error?.code == .tls)
    }
}

/// Tickets for a pool's settlement, recorded in bulk by a thread of the test.
/// A count shared with the pool's callbacks.
final class Counter: @unchecked Sendable {
    // Sendable: read and written under `lock`.
    private let lock = NSLock()
    private var count = 0
    func add() { lock.withLock { count += 1 } }
    var value: Int { lock.withLock { count } }
}

final class TicketBook: @unchecked Sendable {
    // Sendable: every field is read and written under `lock`.
    private let lock = NSLock()
    private var issued = 0
    private var recorded = 0
    private var stopped = false
    private var notYet = 0

    func issue() -> Int { lock.withLock { issued += 1; return issued } }
    func recordAll() { lock.withLock { recorded = issued } }
    func finish() { lock.withLock { stopped = true } }
    var done: Bool { lock.withLock { stopped } }
    var heldAnswers: Int { lock.withLock { notYet } }

    func isRecorded(_ ticket: Int) -> Bool {
        lock.withLock {
            if recorded >= ticket { return true }
            notYet += 1
            return false
        }
    }
}
