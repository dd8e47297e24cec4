import Curl
import FanoutCore
import FanoutStore
import Foundation
import Hummingbird
import MariaDB
#if canImport(Glibc)
import Glibc
#endif

/// The pages people read: jobs, one job, workers.
struct JobPages: Sendable {
    let settings: WebSettings
    let database: WebDatabase

    /// Jobs shown at most, newest first.
    static let jobLimit = 100
    /// Items a page of the job page shows.
    static let itemPage = 100

    /// `/`: email and wallet jobs together, filtered by kind, status, company and creation date.
    func jobs(_ request: Request, _ context: WebContext) async throws -> Response {
        let kind = queryValue(request, "kind").flatMap(JobKind.init(rawValue:))
        let status = queryValue(request, "status").flatMap(JobStatus.init(rawValue:))
        var problems: [String] = []
        let companyText = queryValue(request, "company")
        let company = companyText.flatMap { UInt64($0) }
        if companyText != nil, company == nil { problems.append("Company must be a number: showing every company.") }
        let fromText = queryValue(request, "from")
        let toText = queryValue(request, "to")
        let from = fromText.flatMap(Self.day)
        // "Created before" a day includes that day.
        let before = toText.flatMap(Self.day).map { $0 + 86_400 }
        if fromText != nil && from == nil || toText != nil && before == nil {
            problems.append("Dates are year-month-day, such as 2026-12-06: that filter is left out.")
        }
        let filter = JobFilter(
            status: status?.rawValue, companyID: company, createdFrom: from, createdBefore: before,
            limit: Self.jobLimit)
        let kinds = kind.map { [$0] } ?? JobKind.allCases
        let jobs = try await database.run { try JobAdmin(connection: $0).list(kinds: kinds, filter) }
        let back = request.uri.description
        let views = jobs.map { JobView(job: $0) }
        let values: [String: Any] = [
            "jobs": views.map { $0.values(settings: settings, back: back) },
            "kinds": Self.options(
                ["": "email and wallet", "email": "email", "wallet": "wallet"], order: ["", "email", "wallet"],
                selected: kind?.rawValue ?? ""),
            "statuses": Self.options(
                Dictionary(uniqueKeysWithValues: [("", "any")] + JobStatus.allCases.map { ($0.rawValue, $0.rawValue) }),
                order: [""] + JobStatus.allCases.map(\.rawValue), selected: status?.rawValue ?? ""),
            "company": companyText ?? "", "from": fromText ?? "", "to": toText ?? "",
            "filtered": kind != nil || status != nil || company != nil || from != nil || before != nil,
            "problem": problems.joined(separator: " "),
        ]
        return Page.html(
            "jobs", title: "Jobs", values: values, context: context, running: views.contains { $0.unfinished })
    }

    /// `/jobs/KIND/ID`: summary, progress, failures grouped, the items a page at a time.
    func job(_ request: Request, _ context: WebContext) async throws -> Response {
        let (kind, id) = try routeJob(context)
        let status = queryValue(request, "status").flatMap(ItemStatus.init(rawValue:))
        let search = queryValue(request, "q").map { $0.trimmingCharacters(in: .whitespaces) }.flatMap {
            $0.isEmpty ? nil : $0
        }
        let after = queryValue(request, "after").flatMap { UInt64($0) }
        let query = ReportSource.ItemQuery(status: status?.rawValue, search: search, after: after, limit: Self.itemPage)
        let found = try await database.run { try JobDetail.read($0, kind: kind, id: id, query) }
        guard let found else { throw HTTPError(.notFound, message: "There is no \(kind.rawValue) job \(id).") }
        let view = JobView(job: found.job)
        let base = "/jobs/\(kind.rawValue)/\(id)"
        var filterQuery = ""
        if let status { filterQuery += "&status=\(status.rawValue)" }
        if let search { filterQuery += "&q=\(PercentEncoding.encoded(search))" }
        var values = view.values(settings: settings, back: base)
        values["notice"] = queryValue(request, "notice").flatMap { Self.notices[$0] } ?? ""
        values["counts"] = found.counts.map { ["status": $0.status, "count": $0.count] }
        values["hasInDoubt"] = found.items.contains(where: \.inDoubt)
        values["hasFailures"] = !found.failures.isEmpty
        values["failures"] = found.failures.map { ["count": $0.count, "reason": $0.reason] }
        values["email"] = kind == .email
        values["searchLabel"] = kind == .email ? "Recipient starts with" : "Card id"
        values["q"] = search ?? ""
        values["filtered"] = status != nil || search != nil
        values["itemStatuses"] = Self.options(
            Dictionary(uniqueKeysWithValues: [("", "any")] + ItemStatus.allCases.map { ($0.rawValue, $0.rawValue) }),
            order: [""] + ItemStatus.allCases.map(\.rawValue), selected: status?.rawValue ?? "")
        values["items"] = found.items.map { item -> [String: Any] in
            [
                "id": item.id, "target": item.email ?? item.cardID.map(String.init) ?? "",
                "detail": item.name ?? item.platform ?? "", "status": item.status, "inDoubt": item.inDoubt,
                "attempts": item.attempts, "code": item.code.map(String.init) ?? "",
                "processed": Shown.time(item.processedAt), "reason": item.reason ?? "",
            ]
        }
        values["firstPage"] = after == nil ? "" : base + (filterQuery.isEmpty ? "" : "?" + filterQuery.dropFirst())
        if found.items.count == Self.itemPage, let last = found.items.last {
            values["nextPage"] = "\(base)?after=\(last.id)\(filterQuery)"
        } else {
            values["nextPage"] = ""
        }
        return Page.html(
            "job", title: "\(kind.rawValue) job \(id)", values: values, context: context, running: view.unfinished)
    }

    /// `/workers`: the live workers, when ticks last ran, and pause/continue/restart.
    func workers(_ request: Request, _ context: WebContext) async throws -> Response {
        let (rows, activity) = try await database.run { connection in
            let registry = WorkerRegistry(connection: connection)
            return (try registry.list(), try registry.activity())
        }
        let controls: [[String: Any]] = [
            ["action": "pause", "type": "email", "label": "Pause email", "question": "Stop workers claiming email?"],
            [
                "action": "pause", "type": "wallet", "label": "Pause wallet",
                "question": "Stop workers claiming wallet?",
            ],
            ["action": "continue", "type": "all", "label": "Continue", "question": "Let workers claim again?"],
            [
                "action": "restart", "type": "all", "label": "Restart workers",
                "question": "Ask every worker to finish its round and exit (its supervisor starts it again)?",
            ],
        ].map { $0.merging(["formToken": settings.formToken]) { a, _ in a } }
        let values: [String: Any] = [
            "notice": queryValue(request, "notice").flatMap { Self.notices[$0] } ?? "",
            "lastTick": Shown.ago(activity.lastRecordedTick, now: activity.now),
            "lastBatch": Shown.ago(activity.lastBatch, now: activity.now),
            "hasWorkers": !rows.isEmpty, "canControl": !settings.readOnly, "controls": controls,
            "workers": rows.map { row -> [String: Any] in
                [
                    "name": row.name, "host": row.host, "pid": row.pid, "version": row.version, "types": row.types,
                    "state": row.state,
                    "job": row.jobID.map { "\(row.jobKind ?? "") \($0) (company \(row.companyID ?? 0))" } ?? "-",
                    "itemsDone": row.itemsDone, "memory": Shown.bytes(row.rssBytes),
                    "started": Shown.time(row.startedAt), "heartbeat": Shown.ago(row.heartbeatAt, now: activity.now),
                ]
            },
        ]
        return Page.html("workers", title: "Workers", values: values, context: context, running: !rows.isEmpty)
    }

    /// What a change's redirect says, by a fixed name (no text from the address is shown).
    static let notices = [
        "cancelled": "Cancelled: nothing more of this job is sent.",
        "retried": "The failed items are pending again: the next tick sends them.",
        "paused": "Paused: workers stop claiming that kind after their current batch.",
        "continued": "Workers claim again.",
        "restarting": "Restart asked: each worker exits after its round.",
    ]

    static func options(_ labels: [String: String], order: [String], selected: String) -> [[String: Any]] {
        order.map { ["value": $0, "label": labels[$0] ?? $0, "selected": $0 == selected] }
    }

    /// Midnight UTC of a `YYYY-MM-DD` day, in Unix seconds.
    static func day(_ text: String) -> Double? {
        let parts = text.split(separator: "-").compactMap { Int32($0) }
        guard parts.count == 3, (1...12).contains(parts[1]), (1...31).contains(parts[2]) else { return nil }
        var fields = tm()
        fields.tm_year = parts[0] - 1900
        fields.tm_mon = parts[1] - 1
        fields.tm_mday = parts[2]
        return Double(timegm(&fields))
    }
}

/// What the job page and `/api/jobs/KIND/ID` read in one database visit.
struct JobDetail: Sendable {
    var job: JobSummary
    var counts: [(status: String, count: Int)]
    var failures: [(reason: String, count: Int)]
    var items: [ReportItem]

    /// The job, its counts by status (from the index), its 20 most common failure reasons and a
    /// page of items; nil when there is no such job.
    static func read(_ connection: Connection, kind: JobKind, id: UInt64, _ query: ReportSource.ItemQuery) throws
        -> JobDetail?
    {
        guard let job = try JobAdmin(connection: connection).summary(kind: kind, id: id) else { return nil }
        let source = ReportSource(connection: connection)
        return JobDetail(
            job: job, counts: try source.statusCounts(kind: kind, jobID: id),
            failures: try source.failureReasons(kind: kind, jobID: id, limit: 20),
            items: try source.items(kind: kind, jobID: id, query))
    }
}
