import FanoutCore
import FanoutReports
import FanoutStore
import Foundation
import Hummingbird
import Logging
import MariaDB

/// The routes and the server.
struct WebApplication: Sendable {
    let settings: WebSettings
    let database: WebDatabase
    let logger: Logger

    func run() async throws {
        let router = Router(context: WebContext.self)
        router.add(middleware: SecurityMiddleware(settings: settings, logger: logger))
        let pages = JobPages(settings: settings, database: database)
        let changes = Changes(settings: settings, database: database, logger: logger)
        let api = JobAPI(database: database)
        router.get("/") { request, context in try await pages.jobs(request, context) }
        router.get("/jobs/:kind/:id") { request, context in try await pages.job(request, context) }
        router.get("/jobs/:kind/:id/report/:format") { request, context in
            try await ReportDownload(database: database).response(request, context)
        }
        router.post("/jobs/:kind/:id/cancel") { request, context in
            try await changes.job(.cancel, request, context)
        }
        router.post("/jobs/:kind/:id/retry") { request, context in
            try await changes.job(.retry, request, context)
        }
        router.get("/workers") { request, context in try await pages.workers(request, context) }
        router.post("/workers/:action") { request, context in try await changes.workers(request, context) }
        router.get("/api/jobs") { request, context in try await api.jobs(request, context) }
        router.get("/api/jobs/:kind/:id") { request, context in try await api.job(request, context) }
        router.get("/healthz") { _, _ in try await health() }
        let unsubscribe = UnsubscribePage(settings: settings, database: database, logger: logger)
        router.get("/unsubscribe/:token") { request, context in try await unsubscribe.confirm(request, context) }
        router.post("/unsubscribe/:token") { request, context in try await unsubscribe.unsubscribe(request, context) }
        let app = Application(
            router: router,
            configuration: .init(address: .hostname(settings.host, port: settings.port), serverName: "fanout-web"),
            onServerRunning: { [logger, settings] channel in
                let address = channel.localAddress.map { "\($0.ipAddress ?? settings.host):\($0.port ?? 0)" }
                let mode = settings.readOnly ? " (read-only)" : ""
                logger.notice("serving http://\(address ?? "\(settings.host):\(settings.port)")\(mode)")
            },
            logger: logger
        )
        try await app.runService()
    }

    /// 200 when the database answers a query, else 503 with why.
    private func health() async throws -> Response {
        do {
            _ = try await database.run { try $0.query("SELECT 1") }
            return Response(
                status: .ok, headers: [.contentType: "text/plain; charset=utf-8"],
                body: .init(byteBuffer: ByteBuffer(string: "ok\n")))
        } catch {
            return Response(
                status: .serviceUnavailable, headers: [.contentType: "text/plain; charset=utf-8"],
                body: .init(byteBuffer: ByteBuffer(string: "database unreachable: \(error)\n")))
        }
    }
}

/// The job a route's `:kind` and `:id` name, or a 404.
func routeJob(_ context: WebContext) throws -> (JobKind, UInt64) {
    guard let kind = context.parameters.get("kind").flatMap(JobKind.init(rawValue:)),
        let id = context.parameters.get("id", as: UInt64.self)
    else { throw HTTPError(.notFound, message: "No such page: a job is /jobs/email/ID or /jobs/wallet/ID.") }
    return (kind, id)
}

/// A query parameter, nil when absent or empty.
func queryValue(_ request: Request, _ name: String) -> String? {
    guard let value = request.uri.queryParameters.get(name), !value.isEmpty else { return nil }
    return value
}

/// How the pages write times and spans.
enum Shown {
    /// "2026-12-06 03:10:00Z", or "-".
    static func time(_ unix: Double?) -> String {
        guard let unix else { return "-" }
        return ReportTime.iso(unix).replacingOccurrences(of: "T", with: " ")
    }

    /// "12 s ago", or "-".
    static func ago(_ unix: Double?, now: Double) -> String {
        unix.map { Elapsed.text(now - $0) + " ago" } ?? "-"
    }

    static func bytes(_ count: Int?) -> String {
        guard let count else { return "-" }
        return "\(count / (1 << 20)) MB"
    }
}
