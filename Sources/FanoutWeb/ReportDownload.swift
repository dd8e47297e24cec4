import FanoutCore
import FanoutReports
import FanoutStore
import Hummingbird

/// `/jobs/KIND/ID/report/csv|json|jsonl|html`: the report `fanout report` writes, by the same
/// writers, streamed a page of items at a time so a job of any size downloads in constant memory.
struct ReportDownload: Sendable {
    let database: WebDatabase

    /// Items read from the database per page of the download.
    static let page = 2000

    func response(_ request: Request, _ context: WebContext) async throws -> Response {
        let (kind, id) = try routeJob(context)
        guard let format = context.parameters.get("format").flatMap(ReportFormat.init(rawValue:)), format != .table
        else { throw HTTPError(.notFound, message: "A report is .../report/csv, json, jsonl or html.") }
        let summary = try await database.run { connection -> ReportSummary? in
            do {
                return try ReportSource(connection: connection).summary(kind: kind, jobID: id)
            } catch is JobAdminError {
                return nil
            }
        }
        guard let summary else { throw HTTPError(.notFound, message: "There is no \(kind.rawValue) job \(id).") }
        let types: [ReportFormat: String] = [
            .csv: "text/csv; charset=utf-8", .json: "application/json", .jsonl: "application/jsonl",
            .html: "text/html; charset=utf-8",
        ]
        let database = database
        let body = ResponseBody { writer in
            let output = ReportOutput(collecting: ())
            let report = makeReportWriter(format, output: output)
            report.begin(summary)
            var after: UInt64 = 0
            while true {
                let query = ReportSource.ItemQuery(after: after, limit: Self.page)
                let items = try await database.run { connection in
                    try ReportSource(connection: connection).items(kind: kind, jobID: id, query)
                }
                for item in items { report.row(item) }
                try await writer.write(ByteBuffer(bytes: output.take()))
                guard items.count == Self.page, let last = items.last else { break }
                after = last.id
            }
            report.end()
            try await writer.write(ByteBuffer(bytes: output.take()))
            try await writer.finish(nil)
        }
        return Response(
            status: .ok,
            headers: [
                .contentType: types[format] ?? "application/octet-stream",
                .contentDisposition: "attachment; filename=\"\(kind.rawValue)-job-\(id).\(format.rawValue)\"",
            ],
            body: body)
    }
}
