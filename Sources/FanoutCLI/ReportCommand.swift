import ArgumentParser
import FanoutCore
import FanoutReports
import FanoutSettings
import FanoutStore
import MariaDB

extension ReportFormat: ExpressibleByArgument {}

struct ReportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report",
        abstract: "A job's per-item report: summary, then one row per item (streamed: any size).",
        discussion: """
            Formats: table (for a terminal), csv (RFC 4180), json (one document), jsonl (JSON Lines), \
            html (one self-contained file with charts and a filterable table). Each row: id, \
            recipient or card, platform, status, attempts, in doubt, SMTP reply code or HTTP \
            status, processed at (UTC), reason.
            """
    )

    @Argument(help: "email or wallet") var kind: JobKind
    @Argument(help: "The job's id.") var jobID: UInt64
    @Option(name: .long, help: "table, csv, json, jsonl or html") var format: ReportFormat = .table
    @Option(name: .long, help: "Write to this file instead of standard output.") var output: String?
    @OptionGroup var settings: SettingsOptions

    func run() throws {
        let connection = try openDatabase(settings)
        defer { connection.close() }
        let source = ReportSource(connection: connection)
        let summary = try source.summary(kind: kind, jobID: jobID)
        let destination = try output.map { try ReportOutput(path: $0) } ?? ReportOutput()
        defer { destination.close() }
        let writer = makeReportWriter(format, output: destination)
        writer.begin(summary)
        try source.forEachItem(kind: kind, jobID: jobID) { writer.row($0) }
        writer.end()
    }
}
