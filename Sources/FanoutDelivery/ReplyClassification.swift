import Curl
import FanoutCore

/// What a transfer's result means, for email and wallet alike: an outcome for its item, or a
/// failure of the session (the server, the network or the settings), which is no item's fault.
/// Each kind reads its own replies (SMTP codes, HTTP statuses) and hands the rest to
/// `transferFailure`.
enum ReplyClassification {
    /// `note`: a reason kept even when the item was delivered (a push it shared with another).
    case outcome(ItemOutcome.Result, code: Int?, detail: String, note: String? = nil)
    case session(CurlError)
    /// The platform refused the configuration, not this item (a credential it does not accept):
    /// the job stops with this reason; this item and the batch's unsent ones stay uncharged.
    case stopJob(String)
    /// The server asked the account to slow down (a throttle reply): the batch stops, this item
    /// and the unsent ones stay pending uncharged, and the account pauses for everybody.
    case pause(String)

    /// A libcurl failure as every kind reads it: no connection, TLS, login or unusable settings
    /// fail the session; anything else (a timeout, a broken connection) is tried again later.
    static func transferFailure(_ error: CurlError, detail: String? = nil) -> ReplyClassification {
        switch error.code {
        case .connect, .tls, .login, .usage:
            return .session(error)
        default:
            let code = error.responseCode == 0 ? nil : error.responseCode
            return .outcome(.transient(retryAfter: nil), code: code, detail: detail ?? error.message)
        }
    }
}

/// A piece of text someone else wrote (a server's answer, an item's data, a rendered URL), made
/// fit for a one-line reason: line breaks and tabs become spaces, ends trimmed, at most `limit`
/// characters.
func excerpt(_ text: String, limit: Int = 200) -> String {
    var flat = ""
    flat.reserveCapacity(min(text.utf8.count, limit * 2))
    var count = 0
    for character in text {
        if count == limit { return flat.trimming(where: \.isWhitespace) + "…" }
        flat.append(
            character == "\r\n" || character == "\r" || character == "\n" || character == "\t" ? " " : character)
        count += 1
    }
    return flat.trimming(where: \.isWhitespace)
}
