import ArgumentParser
import FanoutCore
import FanoutReports
import FanoutSettings
import FanoutStore
import MariaDB
import Foundation

extension JobKind: ExpressibleByArgument {
    public init?(argument: String) {
        self.init(rawValue: argument.lowercased())
    }
}

/// Opens the configured database for an operator's command.
func openDatabase(_ options: SettingsOptions) throws -> Connection {
    try Connection(try options.load().database())
}

struct CancelCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cancel",
        abstract: "Cancel a job: nothing more of it is delivered, its unfinished items end cancelled.",
        discussion: """
            Safe while a tick is delivering the job: that tick sees the cancel within half a \
            second, lets the few messages already in flight finish, and cancels the rest. The same \
            as the plain SQL a host application may run:
              UPDATE bulk_email_jobs SET status = 'cancelled', reason = '…' WHERE id = 42;
            """
    )

    @Argument(help: "email or wallet") var kind: JobKind
    @Argument(help: "The job's id.") var jobID: UInt64
    @Option(name: .long, help: "Why, for the report and the host application.") var reason = "Cancelled by user"
    @OptionGroup var settings: SettingsOptions

    func run() throws {
        let connection = try openDatabase(settings)
        defer { connection.close() }
        let cancelled = try JobAdmin(connection: connection).cancel(kind: kind, id: jobID, reason: reason)
        print(
            "Cancelled \(kind.rawValue) job \(jobID): \(cancelled) pending item\(cancelled == 1 ? "" : "s") cancelled; "
                + "items in flight end when their tick sees it."
        )
    }
}

struct RetryCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "retry",
        abstract: "Put a job's failed items back to pending (attempts kept) for the next tick.",
        discussion:
            "In-doubt items that were failed (--in-doubt at-most-once) are failed items too. "
            + "The job goes back to processing and its counters are recounted."
    )

    @Argument(help: "email or wallet") var kind: JobKind
    @Argument(help: "The job's id.") var jobID: UInt64
    @Option(name: .long, parsing: .upToNextOption, help: "Only these items (ids).") var item: [UInt64] = []
    @OptionGroup var settings: SettingsOptions

    func run() throws {
        let connection = try openDatabase(settings)
        defer { connection.close() }
        let retried = try JobAdmin(connection: connection).retry(kind: kind, id: jobID, itemIDs: item)
        let them = retried == 1 ? "it" : "them"
        print(
            "\(retried) failed item\(retried == 1 ? "" : "s") of \(kind.rawValue) job \(jobID) back to pending; "
                + "the next tick sends \(them)."
        )
    }
}

/// How `fanout jobs` and `fanout workers` print: a table for people, JSON for programs.
enum ListFormat: String, ExpressibleByArgument, CaseIterable { case table, json }

struct JobsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "jobs",
        abstract: "List jobs with their progress, newest first."
    )

    @Argument(help: "email or wallet (default: both)") var kind: JobKind?
    @Option(name: .long, help: "Only jobs with this status (pending, processing, completed, failed, cancelled).")
    var status: String?
    @Option(name: .long, help: "Only this company's jobs.") var company: UInt64?
    @Option(name: .long, help: "How many jobs at most, per kind.") var limit = 50
    @Option(name: .long, help: "table or json") var format: ListFormat = .table
    @OptionGroup var settings: SettingsOptions

    func validate() throws {
        if let status, JobStatus(rawValue: status) == nil {
            throw ValidationError(
                "--status must be one of \(JobStatus.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        if limit < 1 { throw ValidationError("--limit must be at least 1") }
    }

    func run() throws {
        let connection = try openDatabase(settings)
        defer { connection.close() }
        let admin = JobAdmin(connection: connection)
        let jobs = try admin.list(
            kinds: kind.map { [$0] } ?? JobKind.allCases, JobFilter(status: status, companyID: company, limit: limit))
        switch format {
        case .json:
            let objects = jobs.map(\.fields)
            let data = try JSONSerialization.data(withJSONObject: objects, options: [.prettyPrinted, .sortedKeys])
            print(String(decoding: data, as: UTF8.self))
        case .table:
            if jobs.isEmpty {
                print(
                    "No jobs\(status.map { " with status \($0)" } ?? "")\(company.map { " for company \($0)" } ?? "").")
                return
            }
            print(Self.table(jobs))
        }
    }

    static func table(_ jobs: [JobSummary]) -> String {
        let header = ["KIND", "ID", "COMPANY", "STATUS", "PROGRESS", "DONE", "FAILED", "AGE", "ACTIVE", "REASON"]
        let rows = jobs.map { job -> [String] in
            let total = max(job.total, job.processed)
            let created: String = job.createdAt.map { Elapsed.text(job.now - $0, compact: true) } ?? "-"
            let active: String = job.lastActivityAt.map { Elapsed.text(job.now - $0, compact: true) + " ago" } ?? "-"
            var reason = job.waiting(short: true) ?? job.reason ?? ""
            if reason.count > 60 { reason = String(reason.prefix(60)) + "…" }
            let cells: [String] = [
                job.kind.rawValue, String(job.id), String(job.companyID), job.status,
                bar(done: job.processed, total: total), "\(job.processed)/\(total)", String(job.failed),
                created, active, reason,
            ]
            return cells
        }
        var widths = header.map(\.count)
        for row in rows { for (i, cell) in row.enumerated() { widths[i] = max(widths[i], cell.count) } }
        func line(_ cells: [String]) -> String {
            cells.enumerated().map { i, cell in
                i == cells.count - 1 ? cell : cell.padding(toLength: widths[i], withPad: " ", startingAt: 0)
            }
            .joined(separator: "  ").trimmingCharacters(in: .whitespaces)
        }
        return ([line(header)] + rows.map(line)).joined(separator: "\n")
    }

    /// Unix seconds as a UTC day: "2026-12-06".
    static func isoDate(_ unix: Double) -> String { String(ReportTime.iso(unix).prefix(10)) }

    static func bar(done: Int, total: Int) -> String {
        guard total > 0 else { return "[" + String(repeating: "·", count: 10) + "]   -" }
        let filled = min(10, done * 10 / total)
        let percent = done * 100 / total
        return "[" + String(repeating: "#", count: filled) + String(repeating: "·", count: 10 - filled)
            + "] \(percent)%"
    }
}
