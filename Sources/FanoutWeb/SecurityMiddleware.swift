import Hummingbird
import Logging
import MariaDB

/// In front of every route: sign-in (but for `/healthz` and the recipient's `/unsubscribe/…`),
/// POSTs refused when read-only or from another site, the security headers on every answer, and
/// errors turned into a page that says what went wrong without the server's insides.
struct SecurityMiddleware: RouterMiddleware {
    typealias Context = WebContext
    let settings: WebSettings
    let logger: Logger

    func handle(
        _ request: Request, context: WebContext, next: (Request, WebContext) async throws -> Response
    ) async throws -> Response {
        var context = context
        context.nonce = randomToken(bytes: 16)
        var response = try await answer(request, &context, next)
        secure(&response, nonce: context.nonce)
        return response
    }

    private func answer(
        _ request: Request, _ context: inout WebContext, _ next: (Request, WebContext) async throws -> Response
    ) async throws -> Response {
        let path = request.uri.path
        let open = path == "/healthz" || path.hasPrefix("/unsubscribe/")
        if !open, let credentials = settings.credentials {
            guard let user = credentials.user(fromAuthorization: request.headers[.authorization]) else {
                var response = Page.message(.unauthorized, "Sign in to see Fanout's jobs.", context: context)
                response.headers[.wwwAuthenticate] = "Basic realm=\"Fanout\", charset=\"UTF-8\""
                return response
            }
            context.user = user
        }
        if request.method == .post, !open {
            if settings.readOnly {
                return Page.message(.forbidden, "This page is read-only (fanout-web --read-only).", context: context)
            }
            if let problem = crossSiteProblem(request) {
                logger.warning("\(request.method) \(path) from \(context.requester): \(problem)")
                return Page.message(.forbidden, problem, context: context)
            }
        }
        do {
            return try await next(request, context)
        } catch let error as HTTPError {
            return Page.message(error.status, error.body ?? error.status.reasonPhrase, context: context)
        } catch let error as MariaDBError where error.isUnavailable {
            logger.error("\(request.method) \(path): \(error)")
            return Page.message(.serviceUnavailable, "The database does not answer: \(error)", context: context)
        } catch {
            logger.error("\(request.method) \(path): \(error)")
            return Page.message(.internalServerError, "Fanout could not answer: \(error)", context: context)
        }
    }
}
