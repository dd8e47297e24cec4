import Foundation
import Testing
import TestSupport

/// Whether Chromium, its driver and Debian's Python are here (CI installs them: there the test
/// runs, and fails when they are missing).
private var browserInstalled: Bool {
    ["/usr/bin/chromium", "/usr/bin/chromedriver", "/usr/bin/python3"].allSatisfy {
        FileManager.default.isExecutableFile(atPath: $0)
    }
}

/// A real browser (Debian's headless Chromium, driven by Tests/browser/*.py through selenium)
/// on the jobs page while a worker sends.
@Suite(
    .enabled(
        if: TestEnvironment.hasDatabase && TestEnvironment.canStartServers
            && (TestEnvironment.requireServices || browserInstalled)))
struct BrowserTests {
    /// Debian's Python, which has python3-selenium (a pyenv one earlier on PATH may not).
    static let python = "/usr/bin/python3"

    @Test func anOperatorWatchesProgressAndCancelsAJobInTheBrowser() throws {
        try withTestDatabase { database, db in
            let fixture = try JobFixture(database: database, db: db)
            let smtp = try TestServer.smtp(["--delay", "0.05"])
            let credentials = ["FANOUT_WEB_USER": "ops", "FANOUT_WEB_PASSWORD": "page-secret"]
            let env = EmailTickTests.environment(fixture, smtp, try makeTestTemplates(), credentials)
            let job = try fixture.emailJob(company: 1, count: 3000)
            let web = try WebServer(environment: env)
            let output = TestEnvironment.scratchDirectory.appendingPathComponent("browser-worker-\(UUID().uuidString)")
            let worker = try startFanout(
                ["work", "--type", "email", "--name", "browser", "--sleep", "1s"], environment: env, output: output)
            defer {
                if worker.isRunning { worker.signal(SIGKILL) }
            }
            let screenshots = TestEnvironment.repositoryRoot.appendingPathComponent(".run/screenshots")
            // This run's screenshots, not an earlier run's.
            for name in ["jobs.png", "job.png"] {
                try? FileManager.default.removeItem(at: screenshots.appendingPathComponent(name))
            }
            let script = TestEnvironment.repositoryRoot.appendingPathComponent("Tests/browser/cancel_from_jobs_page.py")
            let browser = try runProcess(
                URL(fileURLWithPath: Self.python),
                [
                    script.path, "--url", web.base, "--job", String(job), "--screenshots", screenshots.path,
                    "--user", "ops", "--password", "page-secret",
                ],
                environment: ["HOME": TestEnvironment.scratchDirectory.path])
            #expect(browser.status == 0, "\(browser.stdout) \(browser.stderr)")
            let seen = try JSONSerialization.jsonObject(with: Data(browser.stdout.utf8)) as? [String: String] ?? [:]
            // "12/400 (3%)": the count of items done went up on the page by itself.
            func done(_ text: String?) -> Int? { text.flatMap { Int($0.prefix { $0 != "/" }) } }
            let first = try #require(done(seen["first"]), "\(seen)")
            #expect(try #require(done(seen["moved"]), "\(seen)") > first, "progress moved on the page: \(seen)")
            #expect(seen["confirmation"]?.hasPrefix("Cancel email job \(job)?") == true, "\(seen)")
            #expect(seen["job_page"]?.contains("cancelled") == true, "\(seen)")
            #expect(FileManager.default.fileExists(atPath: screenshots.appendingPathComponent("jobs.png").path))
            #expect(FileManager.default.fileExists(atPath: screenshots.appendingPathComponent("job.png").path))
            // The worker ends what it had in flight and sends nothing more of the job.
            #expect(try waitUntil(seconds: 60) { try fixture.statusCounts(job: job)["processing"] == nil })
            worker.signal(SIGTERM)
            #expect(worker.wait(seconds: 120) == 0)
            let counts = try fixture.statusCounts(job: job)
            #expect(try fixture.job(job).status == "cancelled")
            #expect(counts["cancelled", default: 0] > 0, "\(counts)")
            #expect(counts["pending"] == nil, "\(counts)")
            #expect(smtp.messageFiles.count == counts["sent"], "every message that went out is one recorded sent")
            #expect(try fixture.job(job).reason?.contains("ops from 127.0.0.1") == true)
        }
    }
}
