import FanoutCore
import FanoutReports
import FanoutStore
import Foundation
import Hummingbird

/// JSON for monitoring: the jobs with the names `fanout jobs --format json` uses, and one job with
/// its counts, failure reasons and a page of items named as the report's columns.
struct JobAPI: Sendable {
    let database: WebDatabase

    /// `/api/jobs?kind=&status=&company=&limit=`.
    func jobs(_ request: Request, _ context: WebContext) async throws -> Response {
        let kinds = queryValue(request, "kind").flatMap(JobKind.init(rawValue:)).map { [$0] } ?? JobKind.allCases
        let filter = JobFilter(
            status: queryValue(request, "status").flatMap(JobStatus.init(rawValue:))?.rawValue,
            companyID: queryValue(request, "company").flatMap { UInt64($0) },
            limit: min(1000, max(1, queryValue(request, "limit").flatMap { Int($0) } ?? 100)))
        let jobs = try await database.run { try JobAdmin(connection: $0).list(kinds: kinds, filter) }
        return try Self.json(jobs.map(\.fields))
    }

    /// `/api/jobs/KIND/ID?status=&after=&limit=`.
    func job(_ request: Request, _ context: WebContext) async throws -> Response {
        let (kind, id) = try routeJob(context)
        let query = ReportSource.ItemQuery(
            status: queryValue(request, "status").flatMap(ItemStatus.init(rawValue:))?.rawValue,
            search: queryValue(request, "q"), after: queryValue(request, "after").flatMap { UInt64($0) },
            limit: min(10_000, max(1, queryValue(request, "limit").flatMap { Int($0) } ?? 1000)))
        let found = try await database.run { try JobDetail.read($0, kind: kind, id: id, query) }
        guard let found else {
            return try Self.json(["error": "no \(kind.rawValue) job \(id)"], status: .notFound)
        }
        var object = found.job.fields
        object["counts"] = Dictionary(found.counts.map { ($0.status, $0.count) }, uniquingKeysWith: +)
        object["failure_reasons"] = found.failures.map { ["reason": $0.reason, "count": $0.count] }
        let names = ReportColumns.names(kind)
        object["items"] = found.items.map { item in
            Dictionary(uniqueKeysWithValues: zip(names, ReportColumns.values(item, kind: kind).map(Self.jsonValue)))
        }
        return try Self.json(object)
    }

    /// A report field as the JSON report writes it.
    static func jsonValue(_ value: ReportValue) -> Any {
        switch value {
        case .text(let text): text ?? NSNull()
        case .number(let number): number ?? NSNull()
        case .flag(let flag): flag
        case .time(let unix): unix.map(ReportTime.iso) ?? NSNull()
        }
    }

    static func json(_ value: Any, status: HTTPResponse.Status = .ok) throws -> Response {
        let data = try JSONSerialization.data(withJSONObject: value, options: [.sortedKeys])
        return Response(
            status: status, headers: [.contentType: "application/json"],
            body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }
}
