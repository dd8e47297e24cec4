import Foundation
import MariaDB
import Testing
import TestSupport

/// `fanout work`, run as systemd or supervisor runs it: the built binary as a long-lived child
/// process, against the real MariaDB and a real SMTP server, driven by signals and by other
/// `fanout` processes.
@Suite(.enabled(if: TestEnvironment.hasDatabase && TestEnvironment.canStartServers))
struct WorkerTests {
    func startWorker(_ arguments: [String], _ env: [String: String], name: String = "w") throws -> ChildProcess {
        let output = TestEnvironment.scratchDirectory.appendingPathComponent("worker-\(name)-\(UUID().uuidString)")
        return try startFanout(
            ["work", "--type", "email", "--name", name] + arguments, environment: env, output: output)
    }

    /// Whether the (only) worker's row comes to say `state` (its monitor writes a change at once).
    func workerReaches(_ state: String, _ fixture: JobFixture) throws -> Bool {
        try waitUntil(seconds: 10) {
            try fixture.db.queryFirst("SELECT state FROM fanout_workers")?.decode("state", as: String.self) == state
        }
    }

    func processing(_ fixture: JobFixture, _ job: UInt64) throws -> Int {
        try fixture.statusCounts(job: job)["processing", default: 0]
    }

    /// Message ids the sink received for the job's items, with repeats.
    func deliveredItemIDs(_ smtp: TestServer) -> [String] {
        smtp.messageFiles.compactMap { file in
            guard let text = try? String(contentsOf: file, encoding: .utf8) else { return nil }
            return text.split(whereSeparator: \.isNewline).first { $0.hasPrefix("Message-ID:") }.map(String.init)
        }
    }

    @Test func jobInsertedWhileTwoWorkersIdleIsPickedUpWithinSleepPlusOneSecond() throws {
        try withMailSetup { fixture, smtp, env in
            let first = try startWorker(["--sleep", "1s"], env, name: "a")
            let second = try startWorker(["--sleep", "1s"], env, name: "b")
            defer {
                first.signal(SIGKILL)
                second.signal(SIGKILL)
            }
            #expect(waitUntil(seconds: 20) { (try? fixture.db.query("SELECT id FROM fanout_workers").count) == 2 })
            Thread.sleep(forTimeInterval: 2) // both idle, backed off to --sleep
            let inserted = ContinuousClock.now
            let job = try fixture.emailJob(company: 1, count: 30)
            // Picked up: the job goes processing with its first claim.
            #expect(try waitUntil(seconds: 10) { try fixture.job(job).status != "pending" })
            let pickedUp = ContinuousClock.now - inserted
            // --sleep (1 s; jitter only shortens it) + 1 s for the round, with 0.2 s to spare.
            #expect(pickedUp <= .milliseconds(2_200), "picked up after \(pickedUp)")
            #expect(try waitUntil(seconds: 20) { try fixture.job(job).status == "completed" })
            #expect(smtp.messageFiles.count == 30)
            #expect(first.isRunning && second.isRunning)
        }
    }

    @Test func termMidBatchDrainsWithNothingLeftClaimedAndNoDuplicate() throws {
        try withMailSetup(smtpArguments: ["--delay", "0.05"]) { fixture, smtp, env in
            let job = try fixture.emailJob(company: 1, count: 300)
            let worker = try startWorker(["--batch-size", "300", "--sleep", "1s"], env)
            #expect(waitUntil(seconds: 30) { smtp.messageFiles.count >= 20 })
            worker.signal(SIGTERM)
            #expect(worker.wait(seconds: 120) == 0)
            let counts = try fixture.statusCounts(job: job)
            #expect(counts["processing"] == nil, "\(counts)")
            #expect(counts["pending", default: 0] > 0, "the drain stopped claiming: \(counts)")
            let ids = deliveredItemIDs(smtp)
            #expect(ids.count == counts["sent", default: 0], "every delivered message recorded sent, \(counts)")
            #expect(Set(ids).count == ids.count)
            #expect(try fixture.items(job: job).filter { $0.status == "pending" }.allSatisfy { $0.attempts == 0 })
            #expect(try fixture.db.query("SELECT id FROM fanout_workers").isEmpty)
            #expect(try fixture.db.query("SELECT owner FROM fanout_leases WHERE owner IS NOT NULL").isEmpty)
            // The rest goes out with the next tick: every item once.
            let rest = try runFanout(["emails:process-jobs", "--batch-size", "300"], environment: env)
            #expect(rest.status == 0, "\(rest.stderr)")
            #expect(try fixture.statusCounts(job: job) == ["sent": 300])
            #expect(Set(deliveredItemIDs(smtp)).count == 300 && smtp.messageFiles.count == 300)
            #expect(try fixture.countersMatchItems(job: job))
        }
    }

    /// A drain while the worker serves many companies, their batches overlapping (the next
    /// company begun ahead): nothing is left in flight or charged, no lease is held, nothing is
    /// sent twice, and the next tick sends the rest.
    @Test func termWhileCompaniesOverlapLeavesNothingClaimed() throws {
        try withMailSetup(smtpArguments: ["--delay", "0.02"]) { fixture, smtp, env in
            let jobs = try (1...20).map { try fixture.emailJob(company: UInt64(100 + $0), count: 12) }
            let worker = try startWorker(["--batch-size", "6", "--sleep", "1s"], env)
            #expect(waitUntil(seconds: 30) { smtp.messageFiles.count >= 30 })
            worker.signal(SIGTERM)
            #expect(worker.wait(seconds: 120) == 0)
            for job in jobs {
                let counts = try fixture.statusCounts(job: job)
                #expect(counts["processing"] == nil, "\(counts)")
                #expect(try fixture.items(job: job).filter { $0.status == "pending" }.allSatisfy { $0.attempts == 0 })
                // Jobs not reached keep the host's total_items (0) until their first claim.
                if try fixture.job(job).status != "pending" { #expect(try fixture.countersMatchItems(job: job)) }
            }
            #expect(try fixture.db.query("SELECT owner FROM fanout_leases WHERE owner IS NOT NULL").isEmpty)
            let ids = deliveredItemIDs(smtp)
            #expect(Set(ids).count == ids.count, "nothing sent twice")
            for _ in 0..<3 {
                let rest = try runFanout(["emails:process-jobs", "--batch-size", "12"], environment: env)
                #expect(rest.status == 0, "\(rest.stderr)")
            }
            for job in jobs {
                #expect(try fixture.statusCounts(job: job) == ["sent": 12])
                #expect(try fixture.countersMatchItems(job: job))
            }
            #expect(Set(deliveredItemIDs(smtp)).count == 240 && smtp.messageFiles.count == 240)
        }
    }

    @Test func secondTermStopsAtOnceWithItemsInFlightInDoubt() throws {
        try withMailSetup(smtpArguments: ["--delay", "0.5"]) { fixture, smtp, env in
            let job = try fixture.emailJob(company: 1, count: 100)
            let worker = try startWorker(["--batch-size", "100", "--grace", "60s"], env)
            #expect(waitUntil(seconds: 30) { smtp.messageFiles.count >= 4 })
            // From now on the server holds each message a minute; once the messages it was already
            // taking are in, every connection waits on one: the drain cannot end on its own before
            // the second signal, however slow this machine is.
            try smtp.setMessageDelay(seconds: 60)
            var seen = -1
            while smtp.messageFiles.count != seen {
                seen = smtp.messageFiles.count
                Thread.sleep(forTimeInterval: 1.5)
            }
            worker.signal(SIGTERM)
            // The second once the first was seen (two pending SIGTERMs are one to the kernel).
            #expect(try workerReaches("draining", fixture))
            worker.signal(SIGTERM)
            #expect(worker.wait(seconds: 120) == 1)
            #expect(try processing(fixture, job) > 0, "transfers were in flight")
            try smtp.setMessageDelay(seconds: 0)
            Thread.sleep(forTimeInterval: 1.2)
            for _ in 0..<6 {
                let tick = try runFanout(
                    ["emails:process-jobs", "--batch-size", "100", "--stuck-after", "1s"], environment: env)
                #expect(tick.status == 0, "\(tick.stderr)")
                if try fixture.job(job).status == "completed" { break }
            }
            #expect(try fixture.statusCounts(job: job) == ["sent": 100])
            let inDoubt = try fixture.items(job: job).filter(\.inDoubt).count
            #expect(inDoubt > 0 && inDoubt <= 4 + 16, "in doubt: \(inDoubt)")
            let ids = deliveredItemIDs(smtp)
            #expect(Set(ids).count == 100)
            #expect(ids.count - 100 <= inDoubt, "every duplicate is an in-doubt item")
        }
    }

    @Test func usr2PausesClaimingAndContResumes() throws {
        try withMailSetup(smtpArguments: ["--delay", "0.02"]) { fixture, smtp, env in
            let job = try fixture.emailJob(company: 1, count: 400)
            let worker = try startWorker(["--batch-size", "20", "--sleep", "1s"], env)
            defer { worker.signal(SIGKILL) }
            #expect(waitUntil(seconds: 30) { smtp.messageFiles.count >= 20 })
            worker.signal(SIGUSR2)
            #expect(try workerReaches("paused", fixture))
            #expect(try processing(fixture, job) == 0)
            let sent = smtp.messageFiles.count
            Thread.sleep(forTimeInterval: 1.5)
            #expect(smtp.messageFiles.count == sent, "nothing sent while paused")
            #expect(try fixture.statusCounts(job: job)["pending", default: 0] > 0)
            worker.signal(SIGCONT)
            #expect(try waitUntil(seconds: 60) { try fixture.job(job).status == "completed" })
            #expect(smtp.messageFiles.count == 400)
            #expect(worker.isRunning)
        }
    }

    @Test func restartFromAnotherProcessEndsEveryWorker() throws {
        try withMailSetup { fixture, _, env in
            let workers = try (0..<2).map { try startWorker(["--sleep", "1s"], env, name: "r\($0)") }
            defer { for worker in workers { worker.signal(SIGKILL) } }
            #expect(waitUntil(seconds: 20) { (try? fixture.db.query("SELECT id FROM fanout_workers").count) == 2 })
            let listed = try runFanout(["workers", "--format", "json"], environment: env)
            #expect(listed.status == 0, "\(listed.stderr)")
            #expect(listed.stdout.contains("\"name\":\"r0\"") && listed.stdout.contains("\"name\":\"r1\""))
            let restart = try runFanout(["worker:restart"], environment: env)
            #expect(restart.status == 0, "\(restart.stderr)")
            for worker in workers { #expect(worker.wait(seconds: 120) == 0) }
            // A worker started after the request is not affected.
            let later = try startWorker(["--sleep", "1s"], env, name: "later")
            #expect(waitUntil(seconds: 20) { (try? fixture.db.query("SELECT id FROM fanout_workers").count) == 1 })
            Thread.sleep(forTimeInterval: 2.5)
            #expect(later.isRunning, "a restart asked before it started does not end it")
            later.signal(SIGTERM)
            #expect(later.wait(seconds: 120) == 0)
            #expect(try fixture.db.query("SELECT id FROM fanout_workers").isEmpty)
        }
    }

    @Test func pauseAndContinueThroughTheDatabase() throws {
        try withMailSetup { fixture, smtp, env in
            let worker = try startWorker(["--sleep", "1s"], env)
            defer { worker.signal(SIGKILL) }
            #expect(waitUntil(seconds: 20) { (try? fixture.db.query("SELECT id FROM fanout_workers").count) == 1 })
            #expect(try runFanout(["worker:pause", "--type", "email"], environment: env).status == 0)
            let job = try fixture.emailJob(company: 1, count: 10)
            Thread.sleep(forTimeInterval: 2.5)
            #expect(try fixture.job(job).status == "pending")
            #expect(smtp.messageFiles.isEmpty)
            #expect(try runFanout(["worker:continue"], environment: env).status == 0)
            #expect(try waitUntil(seconds: 20) { try fixture.job(job).status == "completed" })
        }
    }

    @Test(arguments: ["--memory 1", "--max-time 2s", "--stop-when-empty", "--max-jobs 1"])
    func limitsEndTheWorkerWithTheirExitStatus(limit: String) throws {
        let arguments = limit.split(separator: " ").map(String.init)
        try withMailSetup { fixture, _, env in
            let withWork = ["--max-jobs 1", "--stop-when-empty"].contains(limit)
            let job = withWork ? try fixture.emailJob(company: 1, count: 30) : nil
            let worker = try startWorker(["--sleep", "1s", "--batch-size", "10"] + arguments, env)
            #expect(worker.wait(seconds: 120) == (limit.hasPrefix("--memory") ? 12 : 0))
            if let job {
                // --max-jobs: one batch, then the limit (the job was left for later, not drained);
                // --stop-when-empty: the work first, then the exit.
                let expected = limit == "--max-jobs 1" ? ["sent": 10, "pending": 20] : ["sent": 30]
                #expect(try fixture.statusCounts(job: job) == expected)
            }
        }
    }

    @Test func notifyProtocolThroughADatagramSocket() throws {
        try withMailSetup { _, _, env in
            let path = TestEnvironment.makeTemporaryDirectory("notify").appendingPathComponent("notify.sock").path
            let socket = try DatagramSocket(path: path)
            var env = env
            env["NOTIFY_SOCKET"] = path
            env["WATCHDOG_USEC"] = "400000"
            let worker = try startWorker(["--sleep", "1s"], env)
            defer { worker.signal(SIGKILL) }
            var received: [String] = []
            #expect(
                waitUntil(seconds: 20) {
                    received += socket.receiveAll()
                    return received.contains { $0.contains("READY=1") } && received.contains("WATCHDOG=1")
                }, "\(received)")
            worker.signal(SIGTERM)
            #expect(worker.wait(seconds: 120) == 0)
            received += socket.receiveAll()
            #expect(received.contains { $0.hasPrefix("STOPPING=1") }, "\(received)")
            #expect(received.firstIndex { $0.contains("READY=1") } == received.startIndex)
        }
    }

    @Test func twoWorkersAndOverlappingCronTicksDeliverEveryItemOnce() throws {
        try withMailSetup(smtpArguments: ["--delay", "0.005"]) { fixture, smtp, env in
            let jobs = try (1...3).map { try fixture.emailJob(company: UInt64($0), count: 150) }
            let workers = try (0..<2).map {
                try startWorker(["--batch-size", "20", "--sleep", "1s"], env, name: "o\($0)")
            }
            defer { for worker in workers { worker.signal(SIGKILL) } }
            var ticks: [ChildProcess] = []
            for round in 0..<6 {
                let output = TestEnvironment.scratchDirectory.appendingPathComponent(
                    "cron-\(round)-\(UUID().uuidString)")
                ticks.append(
                    try startFanout(["emails:process-jobs", "--batch-size", "20"], environment: env, output: output))
                Thread.sleep(forTimeInterval: 0.3)
            }
            for tick in ticks { #expect(tick.wait(seconds: 120) == 0) }
            #expect(try waitUntil(seconds: 60) { try jobs.allSatisfy { try fixture.job($0).status == "completed" } })
            for job in jobs {
                #expect(try fixture.statusCounts(job: job) == ["sent": 150])
                #expect(try fixture.countersMatchItems(job: job))
            }
            let ids = deliveredItemIDs(smtp)
            #expect(ids.count == 450 && Set(ids).count == 450)
            for worker in workers { worker.signal(SIGTERM) }
            for worker in workers { #expect(worker.wait(seconds: 120) == 0) }
        }
    }

    @Test func stopWhenEmptyDuringAnOutageSaysSoWith69() throws {
        try withMailSetup { fixture, _, env in
            _ = try fixture.emailJob(company: 1, count: 3)
            var down = env
            down["MAIL_PORT"] = "1"
            let worker = try startWorker(["--sleep", "1s", "--stop-when-empty"], down)
            #expect(worker.wait(seconds: 120) == 69, "an unusable server is not an empty queue")
        }
    }

    @Test func onceIsExactlyTheCronTick() throws {
        try withMailSetup { fixture, _, env in
            let job = try fixture.emailJob(company: 1, count: 60)
            let once = try runFanout(["work", "--once", "--type", "email"], environment: env)
            #expect(once.status == 0, "\(once.stderr)")
            #expect(try fixture.statusCounts(job: job) == ["sent": 50, "pending": 10])
            #expect(try fixture.db.query("SELECT id FROM fanout_workers").isEmpty, "a tick is not a worker")
            var down = env
            down["MAIL_PORT"] = "1"
            let unavailable = try runFanout(["work", "--once", "--type", "email"], environment: down)
            #expect(unavailable.status == 69, "as emails:process-jobs: \(unavailable.stderr)")
        }
    }

    @Test func smtpOutageKeepsTheWorkerUpBackingOffAndSayingSoOnce() throws {
        try withMailSetup { fixture, _, env in
            let port = try unusedLocalPort() // nothing listens there yet
            let log = TestEnvironment.makeTemporaryDirectory("worker-log").appendingPathComponent("fanout.log")
            var env = env
            env["MAIL_PORT"] = String(port)
            env["FANOUT_LOG_FILE"] = log.path
            let job = try fixture.emailJob(company: 1, count: 10)
            let worker = try startWorker(["--sleep", "1s"], env)
            defer { worker.signal(SIGKILL) }
            Thread.sleep(forTimeInterval: 5)
            #expect(worker.isRunning, "an SMTP outage does not end the worker")
            #expect(try fixture.statusCounts(job: job) == ["pending": 10])
            #expect(try fixture.items(job: job).allSatisfy { $0.attempts == 0 })
            let said = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
            let waiting = said.split(separator: "\n").filter { $0.contains("waiting: SMTP server") }
            #expect(waiting.count == 1, "once a minute, not once a poll: \(said)")
            // The server comes up on that port: the worker notices on its own.
            let smtp = try TestServer.smtp(["--port", String(port)])
            #expect(try waitUntil(seconds: 90) { try fixture.job(job).status == "completed" })
            #expect(smtp.messageFiles.count == 10)
        }
    }

    @Test func databaseRestartIsSurvivedAndAnOutagePastTheDeadlineExits75() throws {
        try withPrivateMariaDB("mariadb-worker") { server in
            let smtp = try TestServer.smtp([])
            let env = try server.migratedEnvironment(smtp: smtp)
            let worker = try startWorker(["--sleep", "1s", "--reconnect-deadline", "60s"], env)
            defer { worker.signal(SIGKILL) }
            Thread.sleep(forTimeInterval: 2)
            #expect(try server.stop().status == 0)
            Thread.sleep(forTimeInterval: 2)
            #expect(worker.isRunning, "the worker waits for the database")
            #expect(try server.start().status == 0)
            let fixture = try server.fixture()
            let job = try fixture.emailJob(company: 1, count: 1)
            #expect(try waitUntil(seconds: 30) { try fixture.job(job).status == "completed" })
            fixture.db.close()
            // Down past the deadline: exit 75 with one line.
            let short = try startWorker(["--sleep", "1s", "--reconnect-deadline", "2s"], env, name: "short")
            defer { short.signal(SIGKILL) }
            Thread.sleep(forTimeInterval: 1.5)
            #expect(try server.stop().status == 0)
            #expect(short.wait(seconds: 120) == 75)
        }
    }
}

/// A Unix datagram socket standing in for systemd's notify socket.
final class DatagramSocket {
    private let descriptor: Int32

    init(path: String) throws {
        descriptor = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        guard descriptor >= 0 else { throw TestServerError(message: "socket: \(errno)") }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        withUnsafeMutableBytes(of: &address.sun_path) { buffer in
            for (index, byte) in bytes.enumerated() { buffer[index] = byte }
        }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(descriptor, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        guard bound == 0 else { throw TestServerError(message: "bind \(path): \(errno)") }
        var flags = fcntl(descriptor, F_GETFL)
        flags |= O_NONBLOCK
        _ = fcntl(descriptor, F_SETFL, flags)
    }

    deinit { close(descriptor) }

    /// Every datagram waiting now.
    func receiveAll() -> [String] {
        var messages: [String] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = recv(descriptor, &buffer, buffer.count, 0)
            if count <= 0 { return messages }
            messages.append(String(decoding: buffer[0..<count], as: UTF8.self))
        }
    }
}
