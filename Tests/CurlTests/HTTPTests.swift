import Curl
import Foundation
import Testing
import TestSupport

@Suite(.enabled(if: TestEnvironment.hasServers))
struct HTTPTests {
    let base = TestEnvironment.httpURL

    @Test func statusHeadersAndBodyArrive() throws {
        let body = #"{"name":"Zoë \"q\" 🎉"}"#
        let request = HTTPRequest(
            method: "POST", url: "\(base)/echo?x=1",
            headers: [("Content-Type", "application/json"), ("Idempotency-Key", "k-1")],
            body: Array(body.utf8)
        )
        let response = try HTTPTransfer().send(request)
        #expect(response.status == 200)
        #expect(response.header("x-echo") == "yes")
        #expect(response.header("Content-Type")?.contains("json") == true)
        let echo = try #require(try JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any])
        #expect(echo["method"] as? String == "POST")
        #expect(echo["body"] as? String == body)
        let headers = echo["headers"] as? [String: String]
        #expect(headers?["idempotency-key"] == "k-1")
        #expect(headers?["expect"] == nil)
    }

    @Test(arguments: ["GET", "PUT", "PATCH", "DELETE"])
    func methodsAreSentAsAsked(method: String) throws {
        let transfer = try HTTPTransfer()
        let body: [UInt8] = method == "GET" || method == "DELETE" ? [] : Array("payload".utf8)
        let response = try transfer.send(HTTPRequest(method: method, url: "\(base)/echo", body: body))
        let echo = try #require(try JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any])
        #expect(echo["method"] as? String == method)
        #expect(echo["body"] as? String == String(decoding: body, as: UTF8.self))
    }

    @Test func errorStatusesAreResponsesNotErrors() throws {
        let transfer = try HTTPTransfer()
        let notFound = try transfer.send(HTTPRequest(url: "\(base)/status/404"))
        #expect(notFound.status == 404)
        #expect(notFound.bodyText == "status 404")
        let failing = try transfer.send(HTTPRequest(method: "POST", url: "\(base)/status/503", body: Array("{}".utf8)))
        #expect(failing.status == 503)
    }

    @Test func bodyIsCappedAtTheLimit() throws {
        let response = try HTTPTransfer().send(HTTPRequest(url: "\(base)/big/100000", maxResponseBytes: 1000))
        #expect(response.status == 200)
        #expect(response.body.count == 1000)
        #expect(response.bodyTruncated)
    }

    @Test func slowResponseHitsTheTimeout() throws {
        let error = #expect(throws: CurlError.self) {
            try HTTPTransfer().send(HTTPRequest(url: "\(base)/slow/5", timeoutMilliseconds: 500))
        }
        #expect(error?.code == .timeout)
    }

    @Test func selfSignedHTTPSIsRejectedByDefault() throws {
        let error = #expect(throws: CurlError.self) {
            try HTTPTransfer().send(HTTPRequest(url: "\(TestEnvironment.httpsURL)/echo"))
        }
        #expect(error?.code == .tls)
    }

    @Test func httpsWorksWhenTheCertificateIsTrusted() throws {
        let request = HTTPRequest(
            url: "\(TestEnvironment.httpsURL)/status/201", tls: TLSOptions(caFile: TestEnvironment.tlsCertificate))
        #expect(try HTTPTransfer().send(request).status == 201)
    }

    @Test func poolRunsManyRequestsOverKeptAliveConnections() throws {
        let server = try TestServer.http()
        let pool = try HTTPPool(parallel: 4)
        var next = 0
        var statuses: [Int: Int] = [:]
        try pool.run(
            next: {
                guard next < 50 else { return nil }
                next += 1
                return (
                    next,
                    HTTPRequest(
                        method: "POST", url: "http://127.0.0.1:\(server.port)/collect/\(next)",
                        body: Array("{\"n\":\(next)}".utf8))
                )
            },
            completed: { tag, result in statuses[tag] = (try? result.get())?.status ?? -1 }
        )
        #expect(statuses.count == 50)
        #expect(statuses.values.allSatisfy { $0 == 200 })
        let stored = try FileManager.default.contentsOfDirectory(
            atPath: server.directory.appendingPathComponent("requests").path)
        #expect(stored.filter { $0.hasSuffix(".json") }.count == 50)
        #expect(server.connectionCount <= 4)
    }

    /// The pacer spaces starts across the pool's threads and from one run to the next, and the
    /// transfers still all complete (a thread waiting for its slot drives the others).
    @Test func startsArePacedAcrossThreadsAndRuns() throws {
        let pool = try HTTPPool(parallel: 4, startsPerSecond: 40, threads: 2)
        var starts: [ContinuousClock.Instant] = []
        var completed = 0
        for _ in 0..<2 {
            var left = 6
            try pool.run(
                next: {
                    guard left > 0 else { return nil }
                    left -= 1
                    starts.append(.now)
                    return (left, HTTPRequest(url: "\(base)/status/204"))
                },
                completed: { _, result in if (try? result.get())?.status == 204 { completed += 1 } }
            )
        }
        #expect(completed == 12)
        // 40 a second: 25 ms apart at least (a millisecond of slack for the clock's grain).
        let gaps = zip(starts.dropFirst(), starts).map { $0 - $1 }
        #expect(gaps.count == 11)
        #expect(gaps.allSatisfy { $0 >= .milliseconds(24) }, "gaps: \(gaps)")
    }
}
