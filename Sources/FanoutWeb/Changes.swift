import FanoutCore
import FanoutStore
import Foundation
import Hummingbird
import Logging

/// The operator's changes: cancel, retry failed, and the workers' pause/continue/restart. Each is
/// a POST carrying the page's form token, confirmed (by the page's script, or by a confirmation
/// page without it), done by the same library code as the CLI, and logged with who and from where.
struct Changes: Sendable {
    let settings: WebSettings
    let database: WebDatabase
    let logger: Logger

    enum JobAction: String, Sendable {
        case cancel, retry
    }

    func job(_ action: JobAction, _ request: Request, _ context: WebContext) async throws -> Response {
        let (kind, id) = try routeJob(context)
        let form = try await Self.form(request)
        if let refused = refusal(form, context) { return refused }
        let back = Self.safeBack(form["back"]) ?? "/jobs/\(kind.rawValue)/\(id)"
        let path = "/jobs/\(kind.rawValue)/\(id)/\(action.rawValue)"
        guard form["confirmed"] == "1" else {
            let question =
                action == .cancel
                ? "Cancel \(kind.rawValue) job \(id)? Its unsent items will not be sent."
                : "Send the failed items of \(kind.rawValue) job \(id) again?"
            return confirmation(question, action: path, back: back, type: nil, context)
        }
        let requester = context.requester
        do {
            let count = try await database.run { connection in
                let admin = JobAdmin(connection: connection)
                switch action {
                case .cancel:
                    return try admin.cancel(kind: kind, id: id, reason: "Cancelled by \(requester) on the web page")
                case .retry:
                    return try admin.retry(kind: kind, id: id)
                }
            }
            let what = action == .cancel ? "\(count) pending items cancelled" : "\(count) failed items back to pending"
            logger.notice("\(action.rawValue) \(kind.rawValue) job \(id) by \(requester): \(what)")
            return Self.redirect(back, notice: action == .cancel ? "cancelled" : "retried")
        } catch let error as JobAdminError {
            logger.notice("\(action.rawValue) \(kind.rawValue) job \(id) by \(requester) refused: \(error)")
            return Page.message(.conflict, error.description, context: context)
        }
    }

    /// `/workers/pause|continue|restart` with `type` email, wallet or all.
    func workers(_ request: Request, _ context: WebContext) async throws -> Response {
        let action = context.parameters.get("action") ?? ""
        guard ["pause", "continue", "restart"].contains(action) else {
            throw HTTPError(
                .notFound, message: "No such change: /workers/pause, /workers/continue or /workers/restart.")
        }
        let form = try await Self.form(request)
        if let refused = refusal(form, context) { return refused }
        let type = form["type"] ?? "all"
        guard let kinds = type == "all" ? JobKind.allCases : JobKind(rawValue: type).map({ [$0] }) else {
            throw HTTPError(.badRequest, message: "type is email, wallet or all")
        }
        guard form["confirmed"] == "1" else {
            return confirmation(
                "\(action.capitalized) \(type == "all" ? "all" : type) workers?", action: "/workers/\(action)",
                back: "/workers", type: type, context)
        }
        let requester = context.requester
        try await database.run { connection in
            let registry = WorkerRegistry(connection: connection)
            switch action {
            case "pause": try registry.setPaused(kinds, true, by: requester)
            case "continue": try registry.setPaused(kinds, false, by: requester)
            default: try registry.requestRestart(by: requester)
            }
        }
        logger.notice("workers \(action) (\(type)) by \(requester)")
        let notice = ["pause": "paused", "continue": "continued", "restart": "restarting"][action] ?? ""
        return Self.redirect("/workers", notice: notice)
    }

    /// A refusal when the form's token is missing or not this process's.
    private func refusal(_ form: [String: String], _ context: WebContext) -> Response? {
        guard let token = form["token"], constantTimeEqual(token, settings.formToken) else {
            logger.warning("a change from \(context.requester) without this page's form token was refused")
            return Page.message(
                .forbidden, "Refused: the form's token is missing or out of date. Reload the page and try again.",
                context: context)
        }
        return nil
    }

    private func confirmation(
        _ question: String, action: String, back: String, type: String?, _ context: WebContext
    ) -> Response {
        Page.html(
            "confirm", title: "Confirm",
            values: [
                "question": question, "action": action, "back": back, "type": type ?? "",
                "formToken": settings.formToken,
            ], context: context)
    }

    /// A form's fields (application/x-www-form-urlencoded, at most 16 KB).
    static func form(_ request: Request) async throws -> [String: String] {
        var request = request
        let body = try await request.collectBody(upTo: 16 << 10)
        var fields: [String: String] = [:]
        for pair in String(buffer: body).split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            func decoded(_ text: Substring) -> String {
                String(text).replacingOccurrences(of: "+", with: " ").removingPercentEncoding ?? ""
            }
            fields[decoded(parts[0])] = parts.count > 1 ? decoded(parts[1]) : ""
        }
        return fields
    }

    /// Where to go back to: a path on this server only (never `//host` or a scheme).
    static func safeBack(_ text: String?) -> String? {
        guard let text, text.hasPrefix("/"), !text.hasPrefix("//"),
            !text.contains(where: { $0 == "\\" || $0.isNewline || $0 == "\r" })
        else { return nil }
        return text
    }

    static func redirect(_ back: String, notice: String) -> Response {
        var location = back
        if let fragment = location.firstIndex(of: "#") { location = String(location[..<fragment]) }
        location += (location.contains("?") ? "&" : "?") + "notice=\(notice)"
        return Response(status: .seeOther, headers: [.location: location])
    }
}
